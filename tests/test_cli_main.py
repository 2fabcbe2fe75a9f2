import subprocess
import sys


def test_ctk_help_runs():
    out = subprocess.run([sys.executable, "-m", "ctkinetics.cli.main", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "usage: ctk" in out.stdout


def test_unknown_command_is_usage_error():
    out = subprocess.run([sys.executable, "-m", "ctkinetics.cli.main", "nonsense"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_output_piped_into_a_reader_that_went_away_is_not_an_error():
    # `ctk validate STUDY | head -1`: the reader has closed the pipe, so writes fail with EPIPE
    import os
    from pathlib import Path

    mini = Path(__file__).resolve().parent / "data" / "mini_study"
    r, w = os.pipe()
    os.close(r)
    try:
        out = subprocess.run([sys.executable, "-m", "ctkinetics.cli.main", "validate", str(mini)],
                             stdout=w, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(w)
    assert out.returncode == 0, out.stderr
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr


# -- outputs: checked before any computation, exit codes of runs with failures (issue 19.4-19.5)
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
MINI = ROOT / "tests" / "data" / "mini_study"
SPEC = ROOT / "data" / "sample" / "trial_sim_seed.toml"


def _ctk(*argv):
    from ctkinetics.cli.main import main

    return main([str(a) for a in argv])


def test_an_output_folder_that_is_a_file_fails_before_the_computation(tmp_path, capsys):
    """The study named does not exist: were the study read first, the message would be about
    it; the output is checked first, so the message names the output."""
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    missing = tmp_path / "no_such_study"
    commands = [("fit", missing, "--model", "stein2019", "--out", blocker),
                ("popfit", missing, "--model", "stein2019", "--out", blocker),
                ("nca", missing, "--out", blocker), ("report", missing, "--out", blocker),
                ("convert", missing, blocker, "--to", "tidy"),
                ("trial-sim", SPEC, "--seed", "1", "--trials", "5", "--out", blocker)]
    for argv in commands:
        assert _ctk(*argv) == 2, argv
        err = capsys.readouterr().err
        assert f"output folder {blocker} is a file, not a folder" in err, (argv, err)
        assert "internal error" not in err
    assert _ctk("simulate", "stein2019", "--out", tmp_path) == 2
    assert f"output file {tmp_path} is a folder" in capsys.readouterr().err
    assert _ctk("boin", "table", "--out", tmp_path) == 2
    assert blocker.read_text() == "a file, not a folder"


def test_an_output_that_is_the_input_is_refused(tmp_path, capsys):
    import shutil

    study = tmp_path / "study"
    shutil.copytree(MINI, study)
    before = {p.name: p.read_bytes() for p in study.iterdir()}
    assert _ctk("convert", study, study, "--to", "tidy") == 2
    assert "is the input" in capsys.readouterr().err
    assert _ctk("nca", study, "--out", tmp_path) == 2          # would replace the study
    assert "holds the input" in capsys.readouterr().err
    assert _ctk("convert", study, study / "subjects.csv", "--to", "nonmem") == 2
    assert "would replace a file of the input folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in study.iterdir()} == before


def test_simulate_refuses_a_non_finite_dose_and_reports_non_finite_results(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    assert _ctk("simulate", "stein2019", "--dose", "nan", "--out", tmp_path / "s.csv") == 2
    assert "--dose must be a positive finite number" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()
    # a model that overflows: X(t) = exp(g t) with g = 50/day reaches inf after ~14 days
    model = tmp_path / "blowup.toml"
    model.write_text('name = "blowup"\ntitle = "exponential growth"\nreference = "test"\n'
                     'time_unit = "day"\nhorizon = 28\n'
                     '[parameters.g]\ndefault = 50.0\nlower = 1.0\nupper = 100.0\nunit = "1/day"\n'
                     'scale = "log"\ndescription = "growth rate"\nsource = "test"\n'
                     '[states.X]\ninitial = 1\nunit = "1"\ndescription = "amount"\n'
                     '[[phases]]\nname = "all"\node = { X = "g * X" }\nsolution = { X = "exp(g * t)" }\n'
                     '[observables]\nconc = "X"\n')
    out = tmp_path / "sim.csv"
    assert _ctk("simulate", model, "--out", out, "--days", "0:28") == 3
    err = capsys.readouterr().err
    assert "typical:" in err and "non-finite value(s) from time 15" in err
    table = pd.read_csv(out)
    # exp(50 t) overflows float64 for t > 709.78/50 = 14.2 days: days 15..28 are missing
    assert (~np.isfinite(table["value"])).sum() == 14
    assert np.isfinite(table.loc[table["time"] <= 14, "value"]).all()
    assert _ctk("simulate", model, "--out", out, "--days", "0:28", "--allow-failures") == 0


def test_a_failed_fit_makes_the_run_exit_3_and_is_named(tmp_path, capsys, monkeypatch):
    """One subject's solver raises (as a blown-up ODE does): its fit is a failure row, the
    folder is complete with the failure in its manifest, and the exit code says so."""
    import json

    from ctkinetics.estimation import individual

    real = individual._fit_group

    def fail_s02(group, opts):
        if any(m.subject == "S02" for m in group.subjects):
            raise FloatingPointError("solver failed: non-finite prediction")
        return real(group, opts)

    monkeypatch.setattr(individual, "_fit_group", fail_s02)
    out = tmp_path / "fit"
    assert _ctk("fit", MINI, "--model", "stein2019", "--out", out, "--starts", "1",
                "--engine", "lmfit") == 3
    err = capsys.readouterr().err
    assert "1 fit(s) failed" in err and "S02: failed: FloatingPointError: solver failed" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete with failures"
    assert manifest["failures"] == ["S02: failed: FloatingPointError: solver failed: "
                                    "non-finite prediction"]
    assert _ctk("fit", MINI, "--model", "stein2019", "--out", out, "--starts", "1",
                "--engine", "lmfit", "--allow-failures") == 0


def test_a_ctk_process_runs_blas_on_one_thread_unless_told_otherwise():
    import os

    def blas_threads(env_value, numpy_first=False):
        code = ("import os\n" + ("import numpy\n" if numpy_first else "")
                + "from ctkinetics.cli.main import _one_blas_thread\n_one_blas_thread()\n"
                "import numpy\nprint(os.environ.get('OPENBLAS_NUM_THREADS'))")
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        if env_value is not None:
            env["OPENBLAS_NUM_THREADS"] = env_value
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert blas_threads(None) == "1"                        # a ctk process: one thread
    assert blas_threads("3") == "3"                         # the user's setting is kept
    assert blas_threads(None, numpy_first=True) == "None"   # a session that loaded numpy
