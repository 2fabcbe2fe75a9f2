"""[uncertainty] report settings: checked like every other table, off by default (the default
report's settings stay as they were), population parts need a population fit."""
from __future__ import annotations

import pytest

from ctkinetics.errors import SettingsError
from ctkinetics.report.settings import ReportSettings, settings_from_mapping


def test_off_by_default_and_absent_from_the_recorded_settings():
    s = ReportSettings()
    assert not any(k.startswith("uncertainty_") for k in s.to_dict())
    on = ReportSettings(uncertainty_exposure_ci=True)
    assert on.to_dict()["uncertainty_draws"] == 500


def test_toml_table_read_and_checked():
    s = settings_from_mapping({"population": {"method": "focei"},
                               "uncertainty": {"bootstrap": 200, "sir": True, "npde": 1000,
                                               "sir_samples": [500, 1000],
                                               "sir_resamples": [100, 200], "workers": 0}})
    assert (s.uncertainty_bootstrap, s.uncertainty_sir, s.uncertainty_npde) == (200, True, 1000)
    assert s.uncertainty_sir_samples == (500, 1000) and s.uncertainty_workers == 0
    assert s.uncertainty_sir_inflation == 1.0
    s2 = settings_from_mapping({"population": {"method": "focei"},
                                "uncertainty": {"sir": True, "sir_inflation": 2}})
    assert s2.uncertainty_sir_inflation == 2.0
    with pytest.raises(SettingsError, match="sir_inflation.*> 0"):
        settings_from_mapping({"population": {"method": "focei"},
                               "uncertainty": {"sir": True, "sir_inflation": 0}})
    with pytest.raises(SettingsError, match="need a population fit"):
        settings_from_mapping({"uncertainty": {"bootstrap": 100}})
    with pytest.raises(SettingsError, match="unknown key 'bootstraps'"):
        settings_from_mapping({"uncertainty": {"bootstraps": 100}})
    with pytest.raises(SettingsError, match="npde must be 0 .off. or at least 100"):
        settings_from_mapping({"population": {"method": "focei"}, "uncertainty": {"npde": 50}})
    with pytest.raises(SettingsError, match="as many of each"):
        settings_from_mapping({"population": {"method": "focei"},
                               "uncertainty": {"sir": True, "sir_samples": [100],
                                               "sir_resamples": [50, 50]}})
    with pytest.raises(SettingsError, match="expected true or false"):
        settings_from_mapping({"uncertainty": {"exposure_ci": 1}})


def test_config_uncertainty_with_population_from_the_command_line(tmp_path):
    """A config with [uncertainty] bootstrap but no [population] is refused alone and
    accepted with ctk report's --population (the error message suggests exactly that)."""
    from ctkinetics.report.settings import load_settings

    cfg = tmp_path / "u.toml"
    cfg.write_text("[uncertainty]\nbootstrap = 30\nnpde = 200\n")
    with pytest.raises(SettingsError, match="u.toml, line 2.*need a population fit"):
        load_settings(cfg)
    s = load_settings(cfg, population_method="focei")
    assert (s.population_method, s.uncertainty_bootstrap, s.uncertainty_npde) == ("focei", 30, 200)
    cfg.write_text("[population]\nmethod = \"saem\"\n[uncertainty]\nbootstrap = 30\n")
    assert load_settings(cfg, population_method="focei").population_method == "focei"
