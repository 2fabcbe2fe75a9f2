"""The Dataset built from the mini study: BLQ parsing, LLOQs, audit, immutability."""
import math

import pytest

from ctkinetics.data import load_study


@pytest.fixture
def ds(mini):
    return load_study(mini, warn=False)


def test_blq_markers_and_their_lloq(ds):
    tg = ds.samples("S01", "transgene").set_index("time")
    assert tg.loc[-1.0, "blq"] and tg.loc[-1.0, "lloq"] == 20  # 'BLQ' -> analyte default LLOQ
    assert tg.loc[28.0, "blq"] and tg.loc[28.0, "lloq"] == 20  # '<20' -> its own LLOQ
    assert math.isnan(tg.loc[28.0, "value"])
    s2 = ds.samples("S02", "transgene").set_index("time")
    assert s2.loc[28.0, "blq"] and s2.loc[28.0, "lloq"] == 25  # 'ND' with the row's lloq column
    assert s2.loc[-1.0, "blq"]  # empty value with blq = 1


def test_missing_sample_is_excluded_and_listed(ds):
    assert 56.0 not in ds.samples("S01", "transgene")["time"].tolist()
    a = ds.audit
    row = a[(a["action"] == "excluded") & (a["subject"] == "S01")]
    assert row["row"].tolist() == [7] and "missing sample" in row["reason"].iloc[0]


def test_pre_infusion_blq_is_a_labelled_structural_zero(ds):
    obs = ds.observations
    pre = obs[obs["pre_infusion"]]
    assert len(pre) == 2 and pre["blq"].all()
    lab = ds.audit[ds.audit["action"] == "labelled"]
    assert sorted(lab["subject"]) == ["S01", "S02"]
    assert lab["reason"].str.contains("structural zero").all()


def test_data_description_counted_by_hand(ds):
    # tests/data/mini_study/observations.csv by hand. transgene: S01 has 6 rows, one of them
    # (day 56) missing -> 5 samples; S02 has 5 -> 10 samples, 2 pre-infusion (both below the
    # LLOQ: 'BLQ' and the empty value with blq=1), 8 after infusion of which 2 below the LLOQ
    # ('<20' and 'ND'): 25.0 %. car_flow: one quantified sample of S01.
    c = ds.counts().set_index("analyte")
    assert list(c.index) == ["transgene", "car_flow"]  # study.toml order
    t = c.loc["transgene"]
    assert (t.participants, t.samples, t.pre_infusion, t.post_infusion) == (2, 10, 2, 8)
    assert (t.blq_pre_infusion, t.blq_post_infusion, t.blq_pct, t.missing) == (2, 2, 25.0, 1)
    assert (t.unit, t.kind, t.lloq) == ("copies/ug", "qpcr", 20.0)
    f = c.loc["car_flow"]
    assert (f.participants, f.samples, f.post_infusion, f.blq_post_infusion, f.blq_pct, f.missing) == (1, 1, 1, 0, 0.0, 0)


def test_tables_are_copies(ds):
    obs = ds.observations
    obs.loc[:, "value"] = -1.0
    assert (ds.observations["value"].dropna() >= 0).all()
    with pytest.raises(Exception):
        ds.study = None


def test_covariates_and_safety(ds):
    assert ds.covariate_names == ["age", "sex"]
    assert ds.covariates_of("S02") == {"dose": 4.5e8, "age": 41.0, "sex": "M"}
    s = ds.safety.set_index("subject")
    assert s.loc["S01", "dlt"] == 0 and math.isnan(s.loc["S02", "dlt"])  # empty -> pending
