"""Issue 14.7: validation collects every problem of every rule in one pass: the study
definition, values, file structure and cross-file rules of all files are reported together by
one run of ``ctk validate`` (a fix-and-rerun loop shows nothing new)."""
import pytest
from data_helpers import append, replace_line

from ctkinetics.cli.main import main
from ctkinetics.data import load_study
from ctkinetics.errors import DataValidationError

# (kind, file, row, column, words)
EXPECTED = [
    ("study definition", "study.toml", 23, "analytes.car_flow.kind", "expected one of qpcr, flow, bcell, conc, got 'cells'"),
    ("value in subjects", "subjects.csv", 3, "dose", "expected a dose in cells, got 'lots'"),
    ("structure", "observations.csv", 1, "comment", "unknown column 'comment'"),
    ("value in observations", "observations.csv", 4, "time", "expected a time in days since infusion, got 'day7'"),
    ("contradiction", "observations.csv", 6, "blq", "blq is 0 but the value '<20' is a below-LLOQ marker"),
    ("cross-file: subject", "observations.csv", 14, "subject", "subject 'S99' is not in"),
    ("cross-file: analyte", "observations.csv", 15, "analyte", "analyte 'il6' is not declared in study.toml"),
    ("duplicate sample", "observations.csv", 16, "time", "duplicate sample: subject 'S02', time 9"),
    ("structure of another file", "safety.csv", 1, "dlt", "appears twice in the header"),
]


@pytest.fixture
def broken(mini):
    toml = mini / "study.toml"
    toml.write_text(toml.read_text().replace('unit = "cells/uL"\nlloq = 0.5\nkind = "flow"',
                                             'unit = "cells/uL"\nlloq = 0.5\nkind = "cells"'))
    replace_line(mini / "subjects.csv", 3, "S02,2,lots,41,M")
    obs = mini / "observations.csv"
    lines = obs.read_text().splitlines()
    obs.write_text("\n".join(line + ("," if i else ",comment") for i, line in enumerate(lines)) + "\n")
    replace_line(obs, 4, "S01,day7,transgene,12000,copies/ug,,,")
    replace_line(obs, 6, "S01,28,transgene,<20,copies/ug,,0,")
    append(obs, "S99,7,transgene,11000,copies/ug,,,")
    append(obs, "S01,10,il6,11,pg/mL,,,")
    append(obs, "S02,9,transgene,21000,copies/ug,,,")
    saf = mini / "safety.csv"
    saf.write_text(saf.read_text().replace("subject,infusion_day,dlt,", "subject,infusion_day,dlt,dlt,", 1))
    return mini


def test_every_kind_of_problem_in_one_run(broken):
    with pytest.raises(DataValidationError) as info:
        load_study(broken, warn=False)
    got = info.value.problems
    for kind, file, row, column, words in EXPECTED:
        hits = [p for p in got if p.file.endswith(file) and words in p.message]
        assert hits, f"{kind}: nothing in {file} with {words!r}; got {[str(p) for p in got]}"
        assert (hits[0].row, hits[0].column) == (row, column), (kind, str(hits[0]))


def test_ctk_validate_prints_them_all_at_once(broken, capsys):
    assert main(["validate", str(broken)]) == 2
    err = capsys.readouterr().err
    for kind, file, row, column, words in EXPECTED:
        assert words in err, kind
    assert f"{len(EXPECTED)} problem(s) in the input data" in err


def test_a_flood_in_one_column_does_not_hide_other_problems(mini):
    # 80 bad times would fill the cap of 50 on their own; the unknown subject is still shown
    obs = mini / "observations.csv"
    for k in range(80):
        append(obs, f"S01,t{k},transgene,1,copies/ug,,")
    append(obs, "S99,7,transgene,11000,copies/ug,,")
    with pytest.raises(DataValidationError) as info:
        load_study(mini, warn=False)
    e = info.value
    assert any("subject 'S99' is not in" in p.message for p in e.problems)
    assert sum(p.column == "time" for p in e.problems) == 10 and e.truncated == 70
    assert "... and 70 more" in str(e)
