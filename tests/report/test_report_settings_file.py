"""Report settings read through the settings home: nested sections, every problem of a
config file at once with its line and key (lines counted by hand), the recorded flat names
unchanged (summary.json and the report's settings table)."""
import pytest

from ctkinetics.errors import SettingsError
from ctkinetics.report.settings import FitSettings, ReportSettings, load_settings

BROKEN = '''[report]
model = "stein2019"

[fit]
start = 2

[band]
level = 0.2

[population]
method = "laplace"

[plots]
width = 3
'''


def test_every_problem_of_a_config_at_once(tmp_path):
    cfg = tmp_path / "review.toml"
    cfg.write_text(BROKEN)
    with pytest.raises(SettingsError) as info:
        load_settings(cfg)
    got = [(p.line, p.key) for p in info.value.problems]
    assert got == [(5, "fit.start"), (8, "band.level"), (11, "population.method"), (13, "plots")]
    text = str(info.value)
    assert text.startswith(f"4 problem(s) in {cfg}:")
    assert "did you mean 'starts'?" in text and "expected a number in [0.5, 1), got 0.2" in text
    assert "expected auto, none, focei or saem, got 'laplace'" in text and "unknown table [plots]" in text


def test_sections_are_nested_and_the_flat_names_still_read(tmp_path):
    cfg = tmp_path / "review.toml"
    cfg.write_text('[fit]\nstarts = 2\nanalytes = ["transgene"]\n[escalation]\ntite = false\n'
                   '[nca]\nintervals = [[0, 28]]\n')
    s = load_settings(cfg)
    assert s.fit == FitSettings(analytes=("transgene",), starts=2)
    assert (s.fit_starts, s.tite, s.nca_intervals) == (2, False, ((0.0, 28.0),))
    assert s == ReportSettings(fit=FitSettings(analytes=("transgene",), starts=2), fit_starts=2, tite=False,
                               nca_intervals=((0.0, 28.0),))


def test_the_recorded_settings_keep_their_flat_names():
    keys = ["model", "as_of", "car_analyte", "bcell_analyte", "fit_analytes", "fit_prior", "fit_blq",
            "fit_error", "fit_starts", "fit_seed", "fit_estimate_sigma", "nca_auc_method", "nca_blq", "nca_auc_type",
            "nca_intervals", "nca_lambda_z_window", "nca_cmax_exclude_before", "tite", "band_level",
            "band_draws", "band_seed"]
    population = ["population_method", "population_random_effects", "population_covariance",
                  "population_vpc_replicates", "population_seed"]
    # no population fit: no population settings recorded ("none" is one spelling of None)
    assert list(ReportSettings(population_method="none").to_dict()) == keys
    assert ReportSettings(population_method="none").population_method is None
    # "auto" is recorded until the review resolves it (summary.json records the resolved ones)
    assert list(ReportSettings().to_dict()) == keys + population
    with_all = ReportSettings(population_method="focei", trial_sim_results="t", uncertainty_exposure_ci=True)
    assert list(with_all.to_dict())[len(keys):len(keys) + 6] == population + ["trial_sim_results"]
    assert with_all.to_dict()["uncertainty_draws"] == 500


def test_programmatic_settings_are_checked_by_the_same_schema():
    with pytest.raises(SettingsError, match="key 'band.draws': expected an integer >= 20, got 5"):
        ReportSettings(band_draws=5)
    with pytest.raises(TypeError, match="unknown setting 'fit_start'"):
        ReportSettings(fit_start=2)
    assert ReportSettings().with_overrides(model="x", fit_starts=1, as_of=None).fit.starts == 1
