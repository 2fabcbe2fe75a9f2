"""Generate the sample SLE cohort in data/sample/ (seeded; run: python data/sample/generate.py).

A simulated phase I cohort of the seed study (allogeneic CD19/CD20 CAR-T in refractory SLE):
12 participants over three dose levels (3.0e8, 4.5e8, 6.0e8 CAR+ T cells) following a
plausible BOIN course with the 14-day stagger inside each dose group, then written as
  sle_cohort/          the tidy study folder (study.toml, subjects.csv, observations.csv, safety.csv)
  sle_cohort_nonmem/   the same cohort as a NONMEM data set (+ study.toml, safety.csv)
  sle_cohort_sdtm/     the same cohort as CDISC SDTM DM, EX, CP transport files (+ study.toml, safety.csv)

Assumptions (stated, not measured):
- Kinetics come from the project's own ``cart_bcell_sle`` model (``GENERATING_MODEL``, with the
  omega^2 of ``GENERATING_OMEGA``): CAR-T expansion driven by
  the participant's B cells, typical peak around day 9 (SLE), B cells depleted within days
  and reappearing after about 110 ± 32 days (Mackensen et al. 2022). Between-participant
  variability is log-normal with the model file's ω² (0.65 on the circulating
  fraction fE, as for log Cmax in Stein 2019), so dose explains little.
- Assays: qPCR transgene copies/µg gDNA (LLOQ 20), flow CAR+ cells/µL (LLOQ 0.5), B cells/µL
  (LLOQ 1); residual errors proportional 25 %, 30 % and 20 %.
- Sampling: pre-infusion (day -3 to -1) and days 1, 4, 7, 10, 14, 21, 28, 42, 56, 90, 180 after
  infusion, up to the data cut-off (study day 200), so late participants have shorter follow-up.
- Calendar and safety: DL1 infused on study days 0, 14, 17; DL2 on 48, 62, 64 (one DLT, grade 3
  CRS) then a second DL2 cohort on 95, 97, 100; DL3 on 130, 144 and 180 (one DLT, grade 3 ICANS
  on day 9); the last participant is still inside the 28-day DLT window at the cut-off.
- Labs report below-LLOQ values in several ways (``<20``, ``BLQ``, ``<LLOQ``); two samples are
  missing (empty) and appear in the audit.
- safety.csv also records the onset day of each participant's highest CRS / ICANS grade (CRS
  days 1-6, ICANS days 4-9 after infusion), and how each DLT window ended: ``completed`` on
  day 28, ``dlt`` on the DLT day, open (empty) while the window runs. No window ended early
  and nobody is in the expansion phase (``group`` and ``evaluable`` stay empty): the
  hand-built studies of tests/escalation exercise those rules.
- decisions.csv: the dose-review committee's record — escalate to DL2 (day 42), a second DL2
  cohort after the grade-3 CRS DLT (day 90), escalate to DL3 (day 128), complete the DL3 cohort
  after the grade-3 ICANS DLT (day 160) — each with its rationale (the design agreed each time).
- efficacy.csv: SLEDAI-2K reduction from baseline (points) on days 28, 84 and 180 after
  infusion (up to the data cut-off) and DORIS remission on day 180; study.toml's [efficacy]
  makes "SLEDAI-2K reduction" >= 4 points by day 84 the BOIN12 response (assumed values, drawn
  from a second seeded generator so the kinetics stay as they were).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 20261125
CUTOFF_DAY = 200.0
DOSES = {"1": 3.0e8, "2": 4.5e8, "3": 6.0e8}
SCHEDULE = [1, 4, 7, 10, 14, 21, 28, 42, 56, 90, 180]
ANALYTES = {  # name: (kind, unit, lloq, proportional residual SD)
    "transgene": ("qpcr", "copies/ug", 20.0, 0.25),
    "car_flow": ("flow", "cells/uL", 0.5, 0.30),
    "bcell": ("bcell", "cells/uL", 1.0, 0.20),
}
# subject, dose level, infusion study day, dlt (1/0/None pending), dlt_day, crs, icans, age, sex
PARTICIPANTS = [
    ("SLE-101", "1", 0, 0, None, 1, 0, 34, "F"),
    ("SLE-102", "1", 14, 0, None, 0, 0, 28, "F"),
    ("SLE-103", "1", 17, 0, None, 1, 0, 45, "M"),
    ("SLE-201", "2", 48, 0, None, 1, 0, 39, "F"),
    ("SLE-202", "2", 62, 1, 5, 3, 0, 23, "F"),
    ("SLE-203", "2", 64, 0, None, 2, 0, 51, "F"),
    ("SLE-204", "2", 95, 0, None, 1, 0, 31, "F"),
    ("SLE-205", "2", 97, 0, None, 0, 0, 42, "M"),
    ("SLE-206", "2", 100, 0, None, 1, 1, 36, "F"),
    ("SLE-301", "3", 130, 0, None, 2, 0, 29, "F"),
    ("SLE-302", "3", 144, 1, 9, 2, 3, 47, "F"),
    ("SLE-303", "3", 180, None, None, 1, 0, 33, "F"),
]
# onset day of the highest CRS / ICANS grade (days after infusion) for grades above 0
ONSET = {"SLE-101": (2, None), "SLE-103": (3, None), "SLE-201": (1, None), "SLE-202": (5, None),
         "SLE-203": (4, None), "SLE-204": (2, None), "SLE-206": (3, 6), "SLE-301": (2, None),
         "SLE-302": (3, 9), "SLE-303": (6, None)}
# the committee's record: (study day, action, level, decision, rationale)
DECISIONS = [
    (42, "committee_decision", "2", "escalate", "DL1 0/3 DLT (SLE-103 day 25 of 28, no event); open DL2"),
    (90, "committee_decision", "2", "stay", "SLE-202 grade 3 CRS on day 5 (DLT, resolved with tocilizumab); "
                                            "treat a second cohort at DL2"),
    (128, "committee_decision", "3", "escalate", "DL2 1/6 DLT; kinetics and B-cell depletion adequate; open DL3"),
    (160, "committee_decision", "3", "stay", "SLE-302 grade 3 ICANS on day 9 (DLT); complete the DL3 cohort "
                                             "with the ICANS management plan reinforced"),
]
EFFICACY_DAYS = (28, 84, 180)
# The model that generated the kinetics (issue 17): models/cart_bcell_sle.toml's typical values
# with the between-subject variances (omega^2) the file had when the cohort was made; the file's
# omega^2 were recalibrated since (issue 17), so they are pinned here to keep the cohort as it was.
GENERATING_MODEL = "cart_bcell_sle"
GENERATING_OMEGA = {"fE": 0.65, "kexp": 0.04, "kfade": 0.04, "dM": 0.09, "Bbase": 0.1, "kkill": 0.1}
STUDY_TOML = """[study]
name = "CD19/CD20 allogeneic CAR-T in refractory SLE (simulated sample cohort)"
start_date = "2026-01-05"

[dose_levels]
1 = 3.0e8
2 = 4.5e8
3 = 6.0e8

[design]
target_dlt_rate = 0.30
dlt_window_days = 28
stagger_days = 14
cohort_size = 3
max_subjects = 12

[analytes.transgene]
unit = "copies/ug"
lloq = 20
kind = "qpcr"

[analytes.car_flow]
unit = "cells/uL"
lloq = 0.5
kind = "flow"

[analytes.bcell]
unit = "cells/uL"
lloq = 1
kind = "bcell"

[efficacy]
endpoint = "SLEDAI-2K reduction"
assessment_day = 84
threshold = 4
direction = "ge"
phi_e = 0.25
"""


def simulate_truth(subjects: pd.DataFrame, times: np.ndarray) -> dict:
    """Noise-free predictions per participant from the project's cart_bcell_sle model, with
    the model file's own between-subject variances (omega2)."""
    from ctkinetics.modeling import load_model, simulate_population

    model = load_model(GENERATING_MODEL)
    dose = subjects["dose"].to_numpy(float)
    pop = simulate_population(model, len(subjects), omega=GENERATING_OMEGA, times=times, seed=SEED,
                              covariates={"dose": dose})
    params = {name: pop.parameters[name].to_numpy(float) for name in model.param_names}
    return model.predict(params, times, covariates={"dose": dose})


def observed(rng, analyte: str, c: float) -> str:
    """The lab's report of a true level ``c``: proportional error (``ANALYTES``), below the
    LLOQ as a marker (``<20``, ``<LLOQ``, ``BLQ``; 20 % of them plain ``BLQ``), else 4 digits."""
    _, _, lloq, sd = ANALYTES[analyte]
    y = c * np.exp(sd * rng.standard_normal()) if c > 0 else 0.0
    if y < lloq:
        marker = {"transgene": f"<{lloq:g}", "car_flow": "<LLOQ", "bcell": "BLQ"}[analyte]
        return marker if rng.random() < 0.8 else "BLQ"
    return f"{y:.4g}"


def _protocol_columns(subj: pd.DataFrame, safety: pd.DataFrame, followup) -> None:
    """Onset days of CRS/ICANS and how each DLT window ended (see the module doc)."""
    onset = [ONSET.get(sid, (None, None)) for sid in subj["subject"]]
    day = lambda x: "" if x is None else f"{x:g}"  # noqa: E731
    safety["crs_day"] = [day(o[0]) for o in onset]
    safety["icans_day"] = [day(o[1]) for o in onset]
    ends, reasons = [], []
    for dlt, dlt_day, f in zip(subj["dlt"], subj["dlt_day"], followup):
        if dlt == 1:
            ends.append(f"{int(dlt_day)}"), reasons.append("dlt")
        elif f >= 28:
            ends.append("28"), reasons.append("completed")
        else:
            ends.append(""), reasons.append("")
    safety["window_end_day"], safety["window_end_reason"] = ends, reasons
    safety["evaluable"] = ""
    safety["group"] = ""


def _efficacy(subj: pd.DataFrame, followup) -> pd.DataFrame:
    """SLEDAI-2K reduction on days 28/84/180 and DORIS remission on day 180 (module doc).

    Baseline SLEDAI-2K ~ 10-16; the reduction grows towards a per-participant plateau (larger on
    average at the higher doses: 4, 8, 9 points at DL1-DL3), measured to the whole point."""
    rng = np.random.default_rng(SEED + 1)  # not the kinetics' generator: those stay as they were
    plateau_by_level = {"1": 4.0, "2": 8.0, "3": 9.0}
    rows = []
    for s, f in zip(subj.itertuples(index=False), followup):
        plateau = max(0.0, plateau_by_level[s.dose_level] + rng.normal(0, 3))
        for d in EFFICACY_DAYS:
            if d > f:
                break
            value = round(plateau * (1 - np.exp(-d / 30.0)) + rng.normal(0, 0.8))
            rows.append((s.subject, d, "SLEDAI-2K reduction", f"{value:g}", ""))
        if f >= 180:
            rows.append((s.subject, 180, "DORIS remission", "", "1" if plateau >= 6 else "0"))
    return pd.DataFrame(rows, columns=["subject", "day", "endpoint", "value", "response"])


def main(out: Path = HERE) -> None:
    rng = np.random.default_rng(SEED)
    subj = pd.DataFrame(PARTICIPANTS, columns=["subject", "dose_level", "infusion_day", "dlt", "dlt_day",
                                               "crs_grade", "icans_grade", "age", "sex"])
    subj["dose"] = subj["dose_level"].map(DOSES)
    followup = CUTOFF_DAY - subj["infusion_day"].to_numpy(float)
    pre_day = -rng.integers(1, 4, len(subj)).astype(float)
    times = np.array(sorted(set(SCHEDULE)), dtype=float)
    truth = simulate_truth(subj, np.concatenate([[0.0], times]))
    rows = []
    for i, s in subj.iterrows():
        for name, (kind, unit, _, _) in ANALYTES.items():
            curve = truth[kind][i]
            baseline = curve[0]
            samples = [(pre_day[i], baseline if kind == "bcell" else 0.0)]
            samples += [(t, c) for t, c in zip(times, curve[1:]) if t <= followup[i]]
            for t, c in samples:
                rows.append((s.subject, t, name, observed(rng, name, c), unit))
    obs = pd.DataFrame(rows, columns=["subject", "time", "analyte", "value", "unit"])
    # Two samples the lab could not report (haemolysed, lost): missing, listed in the audit.
    for k in rng.choice(np.flatnonzero((obs["time"] > 0).to_numpy()), 2, replace=False):
        obs.loc[k, "value"] = ""
    obs["time"] = obs["time"].map(lambda t: f"{t:g}")

    tidy = out / "sle_cohort"
    if tidy.exists():
        shutil.rmtree(tidy)
    tidy.mkdir(parents=True)
    (tidy / "study.toml").write_text(STUDY_TOML)
    subj[["subject", "dose_level", "dose", "age", "sex"]].assign(dose=subj["dose"].map(lambda d: f"{d:.3g}")).to_csv(
        tidy / "subjects.csv", index=False)
    obs.to_csv(tidy / "observations.csv", index=False)
    safety = subj[["subject", "infusion_day", "dlt", "dlt_day"]].copy()
    safety["last_followup_day"] = followup
    safety["crs_grade"] = subj["crs_grade"]
    safety["icans_grade"] = subj["icans_grade"]
    safety["phase"] = "escalation"
    for c in ("dlt", "dlt_day"):
        safety[c] = safety[c].map(lambda x: "" if x is None or pd.isna(x) else f"{int(x)}")
    safety["last_followup_day"] = safety["last_followup_day"].map(lambda x: f"{x:g}")
    _protocol_columns(subj, safety, followup)
    safety.to_csv(tidy / "safety.csv", index=False)
    pd.DataFrame(DECISIONS, columns=["day", "action", "level", "decision", "rationale"]).to_csv(
        tidy / "decisions.csv", index=False)
    _efficacy(subj, followup).to_csv(tidy / "efficacy.csv", index=False)

    from ctkinetics.data import load_study, write_study

    ds = load_study(tidy, warn=False)
    for fmt, folder in (("nonmem", "sle_cohort_nonmem"), ("sdtm", "sle_cohort_sdtm")):
        if (out / folder).exists():
            shutil.rmtree(out / folder)
        write_study(ds, out / folder, fmt)
    print(f"wrote {ds!r} to {tidy} (+ NONMEM and SDTM renderings)", file=sys.stderr)


if __name__ == "__main__":
    main()
