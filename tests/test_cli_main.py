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
