"""The sample cohort ships in three renderings that must read into identical datasets."""
from pathlib import Path

import pytest

from ctkinetics.data import load_study

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.fixture(scope="module")
def tidy():
    return load_study(SAMPLE / "sle_cohort", warn=False)


@pytest.mark.parametrize("folder, fmt", [("sle_cohort_nonmem", "nonmem"), ("sle_cohort_sdtm", "sdtm")])
def test_three_renderings_read_identically(tidy, folder, fmt):
    other = load_study(SAMPLE / folder, warn=False)
    assert other.format == fmt
    assert tidy.differences(other) == []
    assert other.safety.equals(tidy.safety)


def test_sample_cohort_is_the_seed_study(tidy):
    st = tidy.study
    assert dict(st.dose_levels) == {"1": 3.0e8, "2": 4.5e8, "3": 6.0e8}
    assert st.design.target_dlt_rate == 0.30 and st.design.dlt_window_days == 28 and st.design.stagger_days == 14
    assert len(tidy.subject_ids) == 12
    assert {a.kind for a in st.analytes.values()} == {"qpcr", "flow", "bcell"}
    obs = tidy.observations
    post = obs[~obs["pre_infusion"]]
    assert post["blq"].any() and (~post["blq"]).any()
    # every participant has a pre-infusion sample of each analyte, and DLTs / pending exist
    assert (obs[obs["pre_infusion"]].groupby("subject")["analyte"].nunique() == 3).all()
    s = tidy.safety
    assert (s["dlt"] == 1).sum() == 2 and s["dlt"].isna().sum() == 1
