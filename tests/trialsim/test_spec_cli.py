"""Spec validation names the key; the CLI writes its files and maps bad input to exit 2."""
import json

import pandas as pd
import pytest

from ctkinetics.cli.main import main
from ctkinetics.errors import SettingsError
from ctkinetics.trialsim import load_spec, parse_spec

BASE = {"design": {"dose_levels": ["a", "b"], "doses": [1.0, 2.0]},
        "toxicity": {"link": "fixed", "rates": [0.1, 0.3]}}


def with_(path, value):
    import copy

    doc = copy.deepcopy(BASE)
    cur = doc
    for k in path[:-1]:
        cur = cur.setdefault(k, {})
    cur[path[-1]] = value
    return doc


@pytest.mark.parametrize("path,value,needle", [
    (("design", "cohort_sise"), 3, "key 'design.cohort_sise': unknown key 'cohort_sise' in [design] (did you mean 'cohort_size'?)"),
    (("design", "cohort_size"), "three", "key 'design.cohort_size': expected an integer >= 1, got 'three'"),
    (("design", "doses"), [2.0, 1.0], "key 'design.doses': doses must increase strictly"),
    (("design", "target"), 1.2, "key 'design.target': expected a probability in (0, 1), got 1.2"),
    (("toxicity", "rates"), [0.1], "key 'toxicity.rates': expected one value per dose level (2), got 1"),
    (("toxicity",), {"link": "logistic", "reference": 1.0}, "key 'toxicity.link': link = 'logistic' needs kinetics"),
    (("design", "manufacturing"), {"distribution": "weibull"}, "key 'design.manufacturing.distribution': expected one of fixed, uniform, lognormal, gamma"),
    (("design", "expansion"), {"levels": ["zzz"]}, "key 'design.expansion.levels': entry 'zzz' is neither"),
    (("kinetics",), {"model": "stein2019", "typical": {"Cmaxx": [1.0, 2.0]}}, "key 'kinetics.typical.Cmaxx': Cmaxx is not a parameter of model stein2019"),
    (("kinetics",), {"model": "no_such_model"}, "key 'kinetics.model': model 'no_such_model' cannot be loaded"),
    (("rules",), [{"name": "r", "guards": [{"kind": "magic"}]}], "key 'rules[1].guards[1].kind': expected one of min_median_expansion"),
    (("rules",), [{"name": "r"}, {"name": "r"}], "key 'rules[2].name': rule names must be unique; repeated: r"),
    # two missing keys of one table: both named (schema.salvage once failed on the second)
    (("design",), {}, "key 'design.doses': missing: expected an array of numbers > 0"),
])
def test_invalid_spec_names_the_key(path, value, needle):
    with pytest.raises(SettingsError) as err:
        parse_spec(with_(path, value))
    assert needle in str(err.value)


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[design\n")
    with pytest.raises(SettingsError, match=r"bad.toml, line 1: not valid TOML"):
        load_spec(bad)
    with pytest.raises(SettingsError, match=r"missing.toml: file not found \(expected a trial spec\)"):
        load_spec(tmp_path / "missing.toml")


MANY_PROBLEMS = """\
name = "eight mistakes"
[design]
dose_levels = ["a", "b"]
doses = [1.0, 2.0]
cohort_sise = 3
target = 1.2
[design.manufacturing]
distribution = "uniform"
low_days = 9
high_days = 5
[design.expansion]
levels = ["c"]
[kinetics]
observable = "flow"
[toxicity]
link = "fixed"
rates = [0.1]
[[rules]]
name = "r"
[[rules]]
name = "r"
guards = [{kind = "min_completers", n = 0}]
"""


def test_every_problem_of_a_spec_is_reported_at_once(tmp_path):
    # Eight independent mistakes (lines counted by hand in MANY_PROBLEMS): a wrong type or
    # range, an unknown key, checks between keys of a table and between tables, and a check
    # against the model file (stein2019 has the one observable qpcr). One SettingsError names
    # each with the file, its line, the dotted key and what was expected, in file order.
    path = tmp_path / "spec.toml"
    path.write_text(MANY_PROBLEMS)
    with pytest.raises(SettingsError) as err:
        load_spec(path)
    expected = [
        (5, "design.cohort_sise", "unknown key 'cohort_sise' in [design] (did you mean 'cohort_size'?)"),
        (6, "design.target", "expected a probability in (0, 1), got 1.2"),
        (9, "design.manufacturing.low_days", "low_days must not exceed high_days"),
        (12, "design.expansion.levels", "entry 'c' is neither 'mtd' nor a dose level (a, b)"),
        (14, "kinetics.observable", "expected one of qpcr, got 'flow'"),
        (17, "toxicity.rates", "expected one value per dose level (2), got 1"),
        (21, "rules[2].name", "rule names must be unique; repeated: r"),
        (22, "rules[2].guards[1].n", "expected an integer >= 1, got 0"),
    ]
    problems = err.value.problems
    assert [(p.row, p.column) for p in problems] == [(line, key) for line, key, _ in expected]
    text = str(err.value)
    assert text.startswith(f"8 problem(s) in {path}")
    for line, key, message in expected:
        assert f"{path}, line {line}, key '{key}': {message}" in text


def test_sample_spec_reads():
    spec = load_spec("data/sample/trial_sim_seed.toml")
    assert spec.design.levels == ("3.0e8", "4.5e8", "6.0e8")
    assert spec.design.boin.stagger_days == 14.0 and spec.design.boin.max_subjects == 12
    assert [r.name for r in spec.rules] == ["tite-boin", "tite-boin + median Cmax >= 1500"]


def test_cli_writes_tables(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["trial-sim", "data/sample/trial_sim_seed.toml", "--trials", "12", "--seed", "5",
                 "--out", str(out), "--workers", "0", "--quiet"])
    assert code == 0
    trials = pd.read_csv(out / "trials.csv", dtype={"level": str, "mtd": str})
    summary = pd.read_csv(out / "summary.csv", dtype={"level": str})
    doc = json.loads((out / "summary.json").read_text())
    assert len(trials) == 12 * 2 * 3 and doc["n_trials"] == 12
    # summary agrees with a recount from the per-trial table (two independent paths)
    for rule, part in trials.groupby("rule"):
        s = summary[summary["rule"] == rule].set_index("level")
        for level, rows in part.groupby("level"):
            assert s.loc[level, "pct_selected"] == pytest.approx(100 * rows["selected"].mean())
            assert s.loc[level, "mean_participants"] == pytest.approx(rows["n"].mean())
            assert s.loc[level, "mean_dlts"] == pytest.approx(rows["dlt"].mean())
        assert s["pct_selected"].sum() == pytest.approx(100.0)


def test_cli_bad_spec_exit_2(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('[design]\ndose_levels = ["a"]\ndoses = [1.0]\n[toxicity]\nlink = "fixed"\nrates = [2.0]\n')
    code = main(["trial-sim", str(spec), "--trials", "2", "--seed", "1", "--out", str(tmp_path / "o"), "--workers", "0"])
    assert code == 2
    assert f"{spec}, line 6, key 'toxicity.rates[1]': expected a probability in [0, 1], got 2.0" \
        in capsys.readouterr().err


def test_results_written_by_the_library_read_back_equal(tmp_path):
    """write_results (beside load_results in results_io) gives a folder that reads back into an
    equal result, spreadsheet-safe: a rule named like a formula is written quoted and read back
    as it was."""
    from ctkinetics.outputs import verify
    from ctkinetics.trialsim import SerialExecutor, load_results, simulate_trials
    from ctkinetics.trialsim.results_io import write_results

    doc = {**BASE, "rules": [{"name": "=HYPERLINK(\"http://x\",\"y\")"}, {"name": "plain", "tite": False}]}
    spec = parse_spec(doc)
    mem = simulate_trials(spec, 15, 4, SerialExecutor())
    write_results(mem, tmp_path / "out", spec, command="test")
    assert verify(tmp_path / "out") == []
    raw = (tmp_path / "out" / "trials.csv").read_text()
    assert "\n0,\"'=HYPERLINK" in raw and ",=HYPERLINK" not in raw  # neutralised for Excel (OWASP)
    got = load_results(tmp_path / "out", trials=True)
    assert got.rules == mem.rules
    pd.testing.assert_frame_equal(got.summary, mem.summary, check_dtype=False)
    pd.testing.assert_frame_equal(got.trials, mem.trials, check_dtype=False)
    pd.testing.assert_frame_equal(got.exposure, mem.exposure, check_dtype=False)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["spec"]["rules"][0]["name"] == mem.rules[0]


BLOWUP = '''name = "blowup"
title = "E' = k E^2, E(0) = 1: infinite at t = 1/k (day 10 at the default k)"
reference = "test model: a solution that blows up in finite time"
time_unit = "day"
horizon = 365
[parameters.k]
default = 0.1
lower = 0.05
upper = 0.2
unit = "1/day"
scale = "log"
omega2 = 0.01
source = "test"
[states.E]
initial = "1.0"
unit = "copies/ug"
[[phases]]
name = "all"
ode = { E = "k * E * E" }
[observables]
qpcr = "E"
'''


def test_cli_kinetics_that_cannot_be_solved_exit_1_and_write_nothing(tmp_path, capsys):
    # issue 19.5/19.6: a runtime failure is not a result. E' = k E^2 blows up at t = 1/k <= 20 d
    # (k within its bounds 0.05-0.2), inside the 28-day peak search for every participant: the
    # run stops with exit 1 naming the model, the solver's reason and the participant's
    # parameters, and leaves no output folder
    (tmp_path / "blowup.toml").write_text(BLOWUP)
    spec = tmp_path / "s.toml"
    spec.write_text('[design]\ndose_levels = ["a"]\ndoses = [1.0]\n[kinetics]\nmodel = "blowup.toml"\n'
                    'omega2 = "model"\n[toxicity]\nlink = "logistic"\nmetric = "cmax"\nreference = 10.0\n'
                    'p_at_reference = 0.2\n')
    out = tmp_path / "o"
    code = main(["trial-sim", str(spec), "--trials", "3", "--seed", "1", "--out", str(out), "--workers", "0",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "model blowup could not be solved for a virtual participant" in err and "parameters k=" in err
    assert "was not written" in err and "Traceback" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blowup.toml", "s.toml"]  # no temporary folder
