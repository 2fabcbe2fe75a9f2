"""ctk models / ctk simulate through the real CLI entry point."""
import re

import pandas as pd

from ctkinetics.cli.main import main


def test_models_list_shows_every_model(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("stein2019", "cart_bcell_sle", "em_firstorder", "onecpt_oral"):
        assert name in out


def test_models_show_prints_parameters_units_and_sources(capsys):
    assert main(["models", "show", "stein2019"]) == 0
    out = capsys.readouterr().out
    assert "Cmax" in out and "copies/ug" in out and "Stein 2019 Table 1" in out
    # AUC0_inf of the typical subject (235051) to 3 significant digits, its unit in its column
    assert re.search(r"AUC0_inf +2\.35e5 +copies/ug\*day", out)


def test_models_show_rejects_an_unsafe_file_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\ntitle = "t"\nreference = "r"\n[parameters.a]\ndefault = 1.0\nlower = 0.1\n'
        'upper = 2.0\nsource = "s"\n[states.A]\ninitial = 1\n[[phases]]\n'
        "ode = { A = '__import__(\"os\").getcwd()' }\n[observables]\nqpcr = \"A\"\n"
    )
    assert main(["models", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 12" in err and "__import__" in err


def test_simulate_writes_a_reproducible_tidy_csv(tmp_path):
    out1, out2 = tmp_path / "a.csv", tmp_path / "b.csv"
    args = ["simulate", "stein2019", "--n", "5", "--days", "0:28", "--seed", "3"]
    assert main([*args, "--out", str(out1)]) == 0
    assert main([*args, "--out", str(out2)]) == 0
    a, b = pd.read_csv(out1), pd.read_csv(out2)
    assert list(a.columns) == ["subject", "time", "observable", "value"]
    assert len(a) == 5 * 29 and a.equals(b)
    assert main(["simulate", "stein2019", "--days", "28:0", "--out", str(out1)]) == 2


def test_models_show_keeps_a_long_unit_in_its_column(capsys):
    """cart_bcell_sle's qpcr_per_cell unit (copies/ug)/(cells/uL) is 22 characters: it once ran
    into the scale column ('...(cells/uL)log'). Columns are as wide as their longest cell."""
    assert main(["models", "show", "cart_bcell_sle"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(x for x in lines if x.strip().startswith("name") and "unit" in x)
    row = next(x for x in lines if x.strip().startswith("qpcr_per_cell"))
    assert re.search(r"\(copies/ug\)/\(cells/uL\) +log ", row)
    assert row.index("log ") == header.index("scale")  # the scale lines up under its header
    assert "e+" not in "\n".join(lines)  # 2000, 1e6, 4.5e8: never 2e+03 or 4.5e+08
