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
