"""study.toml read by its schema (ctkinetics.data.study_schema through ctkinetics.schema):
every shipped study is accepted and reads back equal from ``Study.to_toml``; a broken file has
all its problems reported in one run, each with its line and key (counted by hand below)."""
from pathlib import Path

import pytest

from ctkinetics.cli.main import main
from ctkinetics.data import read_study_toml
from ctkinetics.errors import DataValidationError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(ROOT.glob("data/sample/*/study.toml")) + [ROOT / "tests/data/mini_study/study.toml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_shipped_studies_are_accepted_and_read_back_equal(path, tmp_path):
    study = read_study_toml(path)
    copy = tmp_path / "study.toml"
    copy.write_text(study.to_toml())
    again = read_study_toml(copy)
    assert again == study
    assert again.design.given == study.design.given and again.protocol.given == study.protocol.given


BROKEN = '''[study]
title = "Mini study"

[dose_levels]
1 = 3.0e8
2 = -4.5e8

[desing]
target_dlt_rate = 0.30

[design]
target_dlt_rate = 0.3
dlt_window_days = 28
cohort_sise = 3
cohort_size = "3"
max_subjects = 12.0
stagger_days = 14

[analytes.transgene]
unit = "copies/ug"
lloq = 20
kind = "pcr"

[sentinel]
crs_grade = 7

[efficacy]
endpoint = "DORIS"
utilities = [40, 100, 60, 0]
'''

# (line, key, words): lines counted in BROKEN by hand
EXPECTED = [
    (1, "study.name", 'missing: expected [study] name = "..."'),
    (2, "study.title", "unknown key 'title' in [study]"),
    (6, "dose_levels.2", "expected a positive dose in cells, got -450000000.0"),
    (8, "desing", "unknown table [desing] (did you mean 'design'?)"),
    (14, "design.cohort_sise", "unknown key 'cohort_sise' in [design] (did you mean 'cohort_size'?)"),
    (15, "design.cohort_size", "expected a positive integer, got '3'"),
    (22, "analytes.transgene.kind", "expected one of qpcr, flow, bcell, conc, got 'pcr'"),
    (25, "sentinel.crs_grade", "expected a grade 1-5, got 7"),
    (29, "efficacy.utilities", "u(efficacy, no DLT) must be the largest"),
]


def test_every_problem_of_the_file_at_once(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(BROKEN)
    with pytest.raises(DataValidationError) as info:
        read_study_toml(path)
    got = [(p.line, p.key, p.message) for p in info.value.problems]
    assert len(got) == len(EXPECTED), got
    for (line, key, message), (want_line, want_key, words) in zip(got, EXPECTED):
        assert (line, key) == (want_line, want_key) and words in message, (line, key, message)


def test_a_valid_max_subjects_given_as_12_0_is_accepted(tmp_path):
    # integers may be written 12.0 (as before the schema); the value is the integer 12
    text = (ROOT / "tests/data/mini_study/study.toml").read_text().replace("max_subjects = 12", "max_subjects = 12.0")
    (tmp_path / "study.toml").write_text(text)
    assert read_study_toml(tmp_path / "study.toml").design.max_subjects == 12


def test_ctk_validate_names_line_and_key(mini, capsys):
    toml = mini / "study.toml"
    toml.write_text(toml.read_text().replace("cohort_size = 3", "cohort_sise = 3"))
    assert main(["validate", str(mini)]) == 2
    err = capsys.readouterr().err
    assert "study.toml, line 12, key 'design.cohort_sise': unknown key 'cohort_sise' in [design] " \
           "(did you mean 'cohort_size'?)" in err
