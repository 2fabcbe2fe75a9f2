"""CAR-T-like profiles with hand-calculated expectations (time in days, copies/µg).

Each expected number is written out from the segment formulas:
linear Δt·(c1 + c2)/2, log Δt·(c1 − c2)/ln(c1/c2), tail Clast·(1 − e^(−λz·Δt))/λz.
"""
import numpy as np
import pandas as pd
import pytest
from nca_helpers import BLQ, profile

from ctkinetics.errors import SettingsError
from ctkinetics.nca import nca

LN2, LN4 = np.log(2.0), np.log(4.0)
ALL_TYPES = [{"start": 0, "end": np.inf, "parameters": "CMAX,TMAX,CLST,TLST,AUCLST,AUCALL,LAMZ,"
              "LAMZNPT,LAMZLL,LAMZUL,R2ADJ,AUCIFO"},
             {"start": 0, "end": 28, "parameters": "AUCINT_LAST,AUCINT_ALL,AUCINT_INF"}]


def run(points, **kw):
    return nca(profile("S1", points), intervals=kw.pop("intervals", ALL_TYPES), **kw)


def val(res, name, start=0.0, end=np.inf):
    row = res.results[(res.results["parameter"] == name) & (res.results["start"] == start)
                      & (res.results["end"] == end)]
    assert len(row) == 1
    return float(row["value"].iloc[0]), row["exclude"].iloc[0]


# a pre-infusion BLQ sample, peak on day 7, no sample on day 28
NO_DAY28 = [(-1, BLQ, True), (7, 1000), (14, 500), (35, 125)]


def test_day28_interpolated_inside_data_log_down():
    res = run(NO_DAY28)
    # 0→7 linear from C(0) = 0; 7→14 log; day 28 lies in the log segment 14→35:
    # c(28) = 500·(125/500)^(14/21); area 14→28 = 21·(500 − c(28))/ln 4
    c28 = 500 * 0.25 ** (14 / 21)
    expected = 7 * 1000 / 2 + 7 * 500 / LN2 + 21 * (500 - c28) / LN4
    for kind in ("LAST", "ALL", "INF"):  # inside the data all types agree
        assert val(res, f"AUCINT_{kind}", 0.0, 28.0)[0] == pytest.approx(expected, rel=1e-12)
    assert val(res, "AUCLST")[0] == pytest.approx(3500 + 3500 / LN2 + 21 * 375 / LN4, rel=1e-12)
    # truncating at the last sample <= 28 would give 3500 + 3500/ln2, which is wrong
    assert val(res, "AUCINT_LAST", 0.0, 28.0)[0] > 3500 + 3500 / LN2 + 1000


def test_day28_interpolated_inside_data_linear():
    res = run(NO_DAY28, auc_method="linear")
    # c(28) = 500 + (14/21)(125 − 500) = 250
    assert val(res, "AUCINT_LAST", 0.0, 28.0)[0] == pytest.approx(3500 + 5250 + 14 * 750 / 2, rel=1e-12)


def test_pre_infusion_sample_is_listed_not_silently_dropped():
    res = run(NO_DAY28)
    ex = res.exclusions
    assert len(ex) == 1 and ex["time"].iloc[0] == -1 and ex["source_row"].iloc[0] == 2
    assert "pre-infusion" in ex["reason"].iloc[0] and "C(0) = 0" in ex["reason"].iloc[0]


# exact exponential decline after Tmax (half-life 4 d), trailing BLQ on days 21 and 56
AFTER_TLAST = [(1, 10), (4, 1000), (8, 500), (12, 250), (16, 125), (21, BLQ), (56, BLQ)]


def test_after_tlast_each_interval_type():
    res = run(AFTER_TLAST)
    lam = LN2 / 4
    auclast = 1 * 10 / 2 + 3 * 1010 / 2 + 4 * (500 + 250 + 125) / LN2
    assert val(res, "AUCLST")[0] == pytest.approx(auclast, rel=1e-12)
    assert val(res, "LAMZ")[0] == pytest.approx(lam, rel=1e-12)
    assert val(res, "LAMZNPT")[0] == 3 and val(res, "LAMZLL")[0] == 8 and val(res, "LAMZUL")[0] == 16
    assert val(res, "R2ADJ")[0] == pytest.approx(1.0, abs=1e-12)
    # last: 0 after Tlast
    assert val(res, "AUCINT_LAST", 0.0, 28.0)[0] == pytest.approx(auclast, rel=1e-12)
    # all: linear down to the BLQ (0) on day 21, then 0
    assert val(res, "AUCINT_ALL", 0.0, 28.0)[0] == pytest.approx(auclast + 5 * 125 / 2, rel=1e-12)
    assert val(res, "AUCALL")[0] == pytest.approx(auclast + 5 * 125 / 2, rel=1e-12)
    # inf: Clast·exp(−λz(t − 16)) from 16 to 28, ignoring the trailing BLQ samples
    tail = 125 * (1 - np.exp(-lam * 12)) / lam  # = 125·(7/8)·4/ln2
    assert val(res, "AUCINT_INF", 0.0, 28.0)[0] == pytest.approx(auclast + tail, rel=1e-12)
    assert tail == pytest.approx(437.5 / LN2, rel=1e-12)
    assert val(res, "AUCIFO")[0] == pytest.approx(auclast + 500 / LN2, rel=1e-12)


def test_interval_auc_is_additive_over_split_intervals():
    iv = [{"start": a, "end": b, "parameters": "AUCINT_LAST,AUCINT_ALL,AUCINT_INF"}
          for a, b in ((0, 28), (0, 10), (10, 18.5), (18.5, 28))]
    for method in ("lin-up/log-down", "linear", "lin-log"):
        res = run(AFTER_TLAST, intervals=iv, auc_method=method)
        for kind in ("LAST", "ALL", "INF"):
            whole = val(res, f"AUCINT_{kind}", 0.0, 28.0)[0]
            parts = sum(val(res, f"AUCINT_{kind}", a, b)[0] for a, b in ((0, 10), (10, 18.5), (18.5, 28)))
            assert parts == pytest.approx(whole, rel=1e-12)


def test_user_lambda_z_window():
    res = run(AFTER_TLAST, lamz_window=(8, 16))
    assert val(res, "LAMZ")[0] == pytest.approx(LN2 / 4, rel=1e-12)
    assert val(res, "LAMZNPT")[0] == 3
    assert "user window 8-16" in res.options.method_label()


def test_blq_between_quantifiable_samples_dropped_by_default():
    pts = [(1, 50), (4, 800), (7, BLQ), (14, 200), (21, 100)]
    res = run(pts)
    # 0→1 linear, 1→4 linear, 4→14 log (the day-7 BLQ is dropped), 14→21 log
    expected = 25 + 3 * 850 / 2 + 10 * 600 / LN4 + 7 * 100 / LN2
    assert val(res, "AUCLST")[0] == pytest.approx(expected, rel=1e-12)
    ex = res.exclusions
    assert list(ex["time"]) == [7.0] and "middle" in ex["reason"].iloc[0]
    # keep it as 0 instead: 4→7 and 7→14 become linear through 0
    res0 = run(pts, blq="first=keep,middle=keep,last=keep")
    assert val(res0, "AUCLST")[0] == pytest.approx(25 + 1275 + 1200 + 700 + 700 / LN2, rel=1e-12)
    assert res0.exclusions.empty
    # or as LLOQ/2 (= 10 here): 4→7 log 3·790/ln80, 7→14 linear (rising)
    res_half = run(pts, blq="first=keep,middle=lloq/2,last=keep")
    assert val(res_half, "AUCLST")[0] == pytest.approx(
        25 + 1275 + 3 * 790 / np.log(80) + 7 * 210 / 2 + 700 / LN2, rel=1e-12)


def test_tied_cmax_first_time_wins():
    res = run([(1, 100), (4, 500), (7, 500), (14, 50)])
    assert val(res, "CMAX")[0] == 500 and val(res, "TMAX")[0] == 4
    lamz, why = val(res, "LAMZ")
    assert np.isnan(lamz) and "fewer than 3" in why


def test_all_blq():
    res = run([(-1, BLQ, True), (1, BLQ), (7, BLQ), (28, BLQ)])
    assert val(res, "CMAX")[0] == 0
    for name in ("TMAX", "CLST", "TLST", "LAMZ", "AUCIFO"):
        v, why = val(res, name)
        assert np.isnan(v) and "BLQ" in why, name
    assert val(res, "AUCLST")[0] == 0 and val(res, "AUCALL")[0] == 0
    assert val(res, "AUCINT_LAST", 0.0, 28.0)[0] == 0


def test_one_quantifiable_sample():
    res = run([(1, BLQ), (7, 300), (14, BLQ)])
    assert (val(res, "CMAX")[0], val(res, "TMAX")[0]) == (300, 7)
    assert (val(res, "CLST")[0], val(res, "TLST")[0]) == (300, 7)
    assert val(res, "AUCLST")[0] == pytest.approx(6 * 300 / 2)          # 0→1 is 0, 1→7 rises
    assert val(res, "AUCALL")[0] == pytest.approx(900 + 7 * 300 / 2)    # down to the BLQ on day 14
    assert val(res, "AUCINT_LAST", 0.0, 28.0)[0] == pytest.approx(900)
    assert val(res, "AUCINT_ALL", 0.0, 28.0)[0] == pytest.approx(1950)
    v, why = val(res, "AUCINT_INF", 0.0, 28.0)
    assert np.isnan(v) and "cannot extrapolate past Tlast" in why


def test_day0_post_infusion_sample():
    pts = [(-2, BLQ, True), (0, 40), (1, BLQ), (7, 1000), (14, 250)]
    res = run(pts)
    # the day-0 sample is real: no C(0) = 0 is added; the day-1 BLQ is in the middle (dropped)
    assert val(res, "AUCLST")[0] == pytest.approx(7 * 1040 / 2 + 7 * 750 / LN4, rel=1e-12)
    assert sorted(res.exclusions["time"]) == [-2.0, 1.0]


def test_day0_sample_may_or_may_not_define_cmax():
    pts = [(0, 5000), (7, 1000), (14, 200), (21, 40)]
    assert (val(run(pts), "CMAX")[0], val(run(pts), "TMAX")[0]) == (5000, 0)
    res = run(pts, cmax_exclude_before=0.25)
    assert (val(res, "CMAX")[0], val(res, "TMAX")[0]) == (1000, 7)
    assert "cmax_exclude_before=0.25 day" in res.options.method_label()


def test_lin_log_uses_log_after_tmax_even_when_rising():
    pts = [(1, 10), (2, 100), (3, 50), (4, 80)]
    ll = val(run(pts, auc_method="lin-log"), "AUCLST")[0]
    ud = val(run(pts, auc_method="lin-up/log-down"), "AUCLST")[0]
    head = 5 + 55  # 0→1 and 1→2 linear (before Tmax)
    assert ll == pytest.approx(head + 50 / np.log(2) + (50 - 80) / np.log(50 / 80), rel=1e-12)
    assert ud == pytest.approx(head + 50 / np.log(2) + 65, rel=1e-12)


def test_duplicate_time_is_listed():
    obs = profile("S1", [(1, 10), (7, 100), (7, 120), (14, 50)])
    res = nca(obs)
    assert list(res.exclusions["source_row"]) == [4] and "duplicate" in res.exclusions["reason"].iloc[0]
    assert val(res, "CMAX")[0] == 100


def test_many_subjects_and_analytes_in_one_call_match_single_runs():
    obs = pd.concat([profile("A", AFTER_TLAST), profile("B", NO_DAY28),
                     profile("A", NO_DAY28, analyte="flow")], ignore_index=True)
    res = nca(obs, intervals=ALL_TYPES)
    single = run(NO_DAY28)
    got = res.results.query("subject == 'B'").set_index(["parameter", "end"])["value"]
    want = single.results.set_index(["parameter", "end"])["value"]
    assert np.allclose(got.loc[want.index], want, equal_nan=True, rtol=1e-14)
    assert set(res.results["analyte"]) == {"qpcr", "flow"}


def test_bad_options_are_settings_errors():
    with pytest.raises(SettingsError):
        run(AFTER_TLAST, auc_method="cubic")
    with pytest.raises(SettingsError):
        run(AFTER_TLAST, blq="middle=maybe")
    with pytest.raises(SettingsError):
        run(AFTER_TLAST, intervals=[{"start": 0, "end": 28, "parameters": "AUCXYZ"}])


def test_blq_rule_by_tmax():
    pts = [(1, 10), (4, 100), (7, BLQ), (10, 50), (14, BLQ)]
    res = run(pts, blq="before_tmax=keep,after_tmax=drop")
    # both BLQ samples come after Tmax (day 4) and are dropped: 0→1, 1→4 linear, 4→10 log
    assert val(res, "AUCALL")[0] == pytest.approx(5 + 165 + 6 * 50 / LN2, rel=1e-12)
    assert list(res.exclusions["time"]) == [7.0, 14.0]
    assert res.exclusions["reason"].str.contains("after_tmax").all()


def test_participant_with_only_a_pre_infusion_sample():
    res = run([(-1, BLQ, True)])
    v, why = val(res, "CMAX")
    assert np.isnan(v) and why == "no post-infusion sample"
    assert len(res.exclusions) == 1
