"""--as-of is a true replay: the report built as of day D equals the report built from the sample
cohort's files truncated by hand to what was known on day D (written out below, independently
of ctkinetics.data.asof): same decision, MTD, NCA, fits, committee record, RD and the same
safety section, and no trace of later data."""
import math
from pathlib import Path

import pandas as pd
import pytest

from ctkinetics.data import load_study
from ctkinetics.report import ReportSettings, build_review
from ctkinetics.report.escalation import decision_box, safety_section

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "sle_cohort"
FAST = dict(fit_starts=1, band_draws=20)
WINDOW = 28.0

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def truncate_by_hand(src: Path, dst: Path, day: float) -> Path:
    """The sample's files as they stood on study ``day`` (read as text, cut by the rules a
    study coordinator would apply)."""
    dst.mkdir(parents=True)
    (dst / "study.toml").write_text((src / "study.toml").read_text())
    safety = pd.read_csv(src / "safety.csv", dtype=str, keep_default_na=False)
    t0 = {s: float(d) for s, d in zip(safety["subject"], safety["infusion_day"])}
    keep = {s for s, d in t0.items() if d <= day}
    subjects = pd.read_csv(src / "subjects.csv", dtype=str, keep_default_na=False)
    subjects[subjects["subject"].isin(keep)].to_csv(dst / "subjects.csv", index=False)
    obs = pd.read_csv(src / "observations.csv", dtype=str, keep_default_na=False)
    when = obs["subject"].map(t0).astype(float) + obs["time"].astype(float)
    obs[obs["subject"].isin(keep) & (when <= day)].to_csv(dst / "observations.csv", index=False)
    rows = []
    for r in safety[safety["subject"].isin(keep)].to_dict("records"):
        elapsed = day - float(r["infusion_day"])
        num = lambda c: float(r[c]) if r[c] != "" else math.nan  # noqa: E731
        if r["dlt"] == "1" and num("dlt_day") > elapsed:  # the DLT had not happened yet
            r["dlt"] = r["dlt_day"] = ""
        if num("window_end_day") > elapsed:  # nor the end of the window
            r["window_end_day"] = r["window_end_reason"] = ""
        if r["dlt"] == "0" and elapsed < WINDOW:  # "no DLT" is known when the window is over
            r["dlt"] = ""
        for c in ("crs", "icans"):
            if num(f"{c}_day") > elapsed:
                r[f"{c}_grade"] = r[f"{c}_day"] = ""
        r["last_followup_day"] = f"{min(num('last_followup_day'), elapsed):g}"
        rows.append(r)
    pd.DataFrame(rows, columns=safety.columns).to_csv(dst / "safety.csv", index=False)
    dec = pd.read_csv(src / "decisions.csv", dtype=str, keep_default_na=False)
    dec[dec["day"].astype(float) <= day].to_csv(dst / "decisions.csv", index=False)
    eff = pd.read_csv(src / "efficacy.csv", dtype=str, keep_default_na=False)
    e_when = eff["subject"].map(t0).astype(float) + eff["day"].astype(float)
    eff[eff["subject"].isin(keep) & (e_when <= day)].to_csv(dst / "efficacy.csv", index=False)
    return dst


def _section(rv) -> str:
    # a figure is a plain plotly spec (dict) or a plotly Figure; its trace count stands for it
    def fig(figure, name):
        data = figure["data"] if isinstance(figure, dict) else figure.data
        return f"<div data-fig='{name}'>{len(data)}</div>"
    return decision_box(rv, anchor=True) + safety_section(rv, fig)


def _audit(rv) -> pd.DataFrame:
    a = rv.dataset.audit
    a = a[~a["reason"].astype(str).str.startswith("after the as-of day")]
    # rows of a truncated file are numbered anew: compare what was audited, not where
    a = a.assign(file=a["file"].map(lambda f: Path(str(f)).name)).drop(columns=["row"])
    return a.sort_values(["file", "subject", "analyte", "time", "reason"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("day", [60, 120, 170])
def test_report_as_of_day_equals_report_on_hand_truncated_files(tmp_path, day):
    replay = build_review(load_study(SAMPLE), ReportSettings(as_of=day, **FAST))
    hand = build_review(load_study(truncate_by_hand(SAMPLE, tmp_path / "cut", day)),
                        ReportSettings(as_of=day, **FAST))
    later = {s for s in load_study(SAMPLE).subject_ids} - set(hand.dataset.subject_ids)
    assert set(replay.dataset.subject_ids) == set(hand.dataset.subject_ids)
    assert replay.decision.to_dict() == hand.decision.to_dict()
    assert replay.escalation.protocol_dict() == hand.escalation.protocol_dict()  # MTD, committee, RD
    pd.testing.assert_frame_equal(replay.nca.to_frame(), hand.nca.to_frame())
    pd.testing.assert_frame_equal(replay.fit.to_frame(), hand.fit.to_frame())
    pd.testing.assert_frame_equal(replay.counts, hand.counts)
    pd.testing.assert_frame_equal(_audit(replay), _audit(hand), check_dtype=False)
    assert _section(replay) == _section(hand)
    # everything later is listed in the audit, and nowhere else
    after = replay.dataset.audit[replay.dataset.audit["reason"].astype(str).str.startswith("after the as-of day")]
    assert later <= set(after["subject"]) and not later & set(replay.nca.to_frame()["subject"])
    assert max(replay.dataset.observations["time"] + replay.dataset.observations["subject"].map(
        dict(zip(replay.dataset.safety["subject"], replay.dataset.safety["infusion_day"])))) <= day
