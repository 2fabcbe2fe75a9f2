"""The study definition: ``study.toml`` (dose levels, design, analytes)."""
from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.protocol import (PROTOCOL_TABLES, REQUIRED_DESIGN_KEYS, Design,  # noqa: F401 (Design's home)
                                      Protocol, check_top_level_tables, design_toml_lines,
                                      read_design, read_protocol)
from ctkinetics.errors import DataValidationError

ANALYTE_KINDS = ("qpcr", "flow", "bcell", "conc")


@dataclass(frozen=True)
class Analyte:
    """A measured quantity: ``kind`` links it to a model observable (qpcr, flow, bcell, conc)."""

    name: str
    unit: str
    lloq: float  # default LLOQ of the assay (NaN if none); a sample may carry its own
    kind: str


@dataclass(frozen=True)
class Study:
    """What ``study.toml`` declares. ``dose_levels`` maps level label -> dose, ordered by dose."""

    name: str
    dose_levels: MappingProxyType
    design: Design
    analytes: MappingProxyType
    formats: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    start_date: str = "2026-01-01"
    protocol: Protocol = field(default_factory=Protocol)

    @staticmethod
    def build(name, dose_levels, design, analytes, formats=None, start_date="2026-01-01",
              protocol: Protocol | None = None) -> "Study":
        ordered = dict(sorted(((str(k), float(v)) for k, v in dose_levels.items()), key=lambda kv: kv[1]))
        return Study(
            name=name,
            dose_levels=MappingProxyType(ordered),
            design=design,
            analytes=MappingProxyType(dict(analytes)),
            formats=MappingProxyType(dict(formats or {})),
            start_date=start_date,
            protocol=protocol or Protocol(),
        )

    def with_dose_levels(self, dose_levels) -> "Study":
        """The same study with another dose ladder (e.g. as of a day before a level was inserted)."""
        ordered = dict(sorted(((str(k), float(v)) for k, v in dict(dose_levels).items()), key=lambda kv: kv[1]))
        return dataclasses.replace(self, dose_levels=MappingProxyType(ordered))

    def with_formats(self, formats: dict) -> "Study":
        """The same study with other format options (every other field kept as it is)."""
        return dataclasses.replace(self, formats=MappingProxyType({k: dict(v) if isinstance(v, dict) else v
                                                                    for k, v in formats.items()}))

    def level_of_dose(self, dose: float) -> str | None:
        """The dose-level label whose dose equals ``dose`` (relative tolerance 1e-9)."""
        for label, d in self.dose_levels.items():
            if math.isclose(d, dose, rel_tol=1e-9):
                return label
        return None

    def to_toml(self) -> str:
        """Render back to ``study.toml`` text (used by the writers)."""
        lines = ["[study]", f"name = {_q(self.name)}", f"start_date = {_q(self.start_date)}", "", "[dose_levels]"]
        lines += [f"{_key(k)} = {_num(v)}" for k, v in self.dose_levels.items()]
        lines += ["", "[design]"] + design_toml_lines(self.design)
        for a in self.analytes.values():
            lines += ["", f"[analytes.{_key(a.name)}]", f"unit = {_q(a.unit)}"]
            if not math.isnan(a.lloq):
                lines.append(f"lloq = {_num(a.lloq)}")
            lines.append(f"kind = {_q(a.kind)}")
        for fmt, table in self.formats.items():
            for sub, mapping in table.items():
                if isinstance(mapping, dict):
                    lines += ["", f"[formats.{fmt}.{sub}]"]
                    lines += [f"{_key(k)} = {_value(v)}" for k, v in mapping.items()]
            scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
            if scalars:
                lines += ["", f"[formats.{fmt}]"] + [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
        lines += self.protocol.to_toml()
        return "\n".join(lines) + "\n"


def _q(s) -> str:
    s = str(s)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(x: float) -> str:
    """A number as TOML that reads back to the same double: short (``3e+08``) when that is
    exact, else Python's shortest round-trip form (``314159265.3``)."""
    short = format(float(x), "g")
    return short if float(short) == float(x) else repr(float(x))


def _value(v) -> str:
    """A TOML value: an integer as such, a list of strings as a TOML array, anything else as a
    string."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_q(x) for x in v) + "]"
    return _q(v)


def _key(k) -> str:
    k = str(k)
    return k if k.replace("_", "").replace("-", "").isalnum() else _q(k)


#: Top-level tables of study.toml (a misspelled table is an error, never silently ignored).
KNOWN_TABLES = ("study", "dose_levels", "design", "analytes", "formats") + PROTOCOL_TABLES


def read_study_toml(path, problems: ProblemCollector | None = None) -> Study | None:
    """Read and validate ``study.toml``; all problems are reported together.

    With ``problems`` (a collector shared with the data files' readers) problems are added
    there instead of raised, so one run reports the study definition's problems together with
    those of the data files; the returned study is then a best effort (None when the file
    cannot be parsed at all).
    """
    path = Path(path)
    pc = problems if problems is not None else ProblemCollector()
    doc = None
    with pc.collecting():
        doc = _parse_toml(path)
    if doc is None:
        if problems is None:
            pc.raise_if_any()
        return None
    study = _study_from_doc(doc, path, pc)
    if problems is None:
        pc.raise_if_any()
    return study


def _parse_toml(path: Path) -> dict:
    from ctkinetics.data.csvfile import read_input_bytes

    if not path.exists():
        raise DataValidationError.at(path, None, None, "file not found (a study folder needs study.toml)")
    raw = read_input_bytes(path, "TOML file")
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise DataValidationError.at(path, int(m.group(1)) if m else None, None, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise DataValidationError.at(path, None, None, "not UTF-8 text") from None


def _study_from_doc(doc: dict, path: Path, pc: ProblemCollector) -> Study:
    f = str(path)
    check_top_level_tables(doc, KNOWN_TABLES, f, pc)

    study = doc.get("study", {})
    name = study.get("name") if isinstance(study, dict) else None
    if not isinstance(name, str) or not name.strip():
        pc.add(f, None, "study.name", "expected [study] name = \"...\"")
        name = ""
    start_date = str(study.get("start_date", "2026-01-01")) if isinstance(study, dict) else "2026-01-01"

    levels = doc.get("dose_levels")
    dose_levels = {}
    if not isinstance(levels, dict) or not levels:
        pc.add(f, None, "dose_levels", "expected a [dose_levels] table, e.g. 1 = 3.0e8")
    else:
        for k, v in levels.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                pc.add(f, None, f"dose_levels.{k}", f"expected a positive dose in cells, got {v!r}")
            else:
                dose_levels[str(k)] = float(v)

    design = read_design(doc, f, pc)

    analytes = {}
    adoc = doc.get("analytes")
    if not isinstance(adoc, dict) or not adoc:
        pc.add(f, None, "analytes", "expected at least one [analytes.NAME] table with unit, lloq and kind")
    else:
        for aname, a in adoc.items():
            col = f"analytes.{aname}"
            if not isinstance(a, dict):
                pc.add(f, None, col, "expected a table with unit, lloq and kind")
                continue
            unit, kind, lloq = a.get("unit"), a.get("kind"), a.get("lloq", float("nan"))
            if not isinstance(unit, str) or not unit:
                pc.add(f, None, f"{col}.unit", "expected a unit string, e.g. \"copies/ug\"")
            if kind not in ANALYTE_KINDS:
                pc.add(f, None, f"{col}.kind", f"expected one of {', '.join(ANALYTE_KINDS)}, got {kind!r}")
            if isinstance(lloq, bool) or not isinstance(lloq, (int, float)) or (math.isfinite(lloq) and lloq <= 0):
                pc.add(f, None, f"{col}.lloq", f"expected a positive number, got {lloq!r}")
                lloq = float("nan")
            analytes[str(aname)] = Analyte(str(aname), str(unit), float(lloq), str(kind))
    formats = doc.get("formats", {})
    if not isinstance(formats, dict):
        pc.add(f, None, "formats", "expected [formats.nonmem] / [formats.sdtm] tables")
        formats = {}
    protocol = read_protocol(doc, f, pc)
    return Study.build(name, dose_levels, design, analytes, formats, start_date, protocol)
