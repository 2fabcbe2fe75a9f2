"""The study definition: ``study.toml`` (dose levels, design, analytes)."""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.protocol import (Design,  # noqa: F401 (Design's home)
                                      Protocol, design_from, design_toml_lines, protocol_from)
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


def read_study_toml(path, problems: ProblemCollector | None = None) -> Study | None:
    """Read and validate ``study.toml`` by its schema (:mod:`ctkinetics.data.study_schema`,
    through :mod:`ctkinetics.schema`); every problem is reported together, each naming the
    line and the key (``design.cohort_size``).

    With ``problems`` (a collector shared with the data files' readers) problems are added
    there instead of raised, so one run reports the study definition's problems together with
    those of the data files; the returned study is then a best effort (the keys with problems
    left out; None when the file cannot be parsed at all).
    """
    from ctkinetics.data.study_schema import StudyFile
    from ctkinetics.schema import Problems, validate

    pc = problems if problems is not None else ProblemCollector()
    doc = _parse_toml(Path(path), pc)
    study = None
    if doc is not None:
        validate(doc, StudyFile, Problems(doc, sink=pc))
        study = _study_from(doc.data)
    if problems is None:
        pc.raise_if_any()
    return study


def _parse_toml(path: Path, pc: ProblemCollector):
    """The parsed document (None, with the problem in ``pc``, when it cannot be read)."""
    from ctkinetics.data.csvfile import read_input_bytes
    from ctkinetics.schema import TomlDocument, TomlSyntaxError

    if not path.exists():
        pc.add(path, None, None, "file not found (a study folder needs study.toml)")
        return None
    with pc.collecting():
        raw = read_input_bytes(path, "TOML file")
        try:
            return TomlDocument.parse(raw.decode("utf-8-sig"), str(path))
        except UnicodeDecodeError:
            raise DataValidationError.at(path, None, None, "not UTF-8 text") from None
        except TomlSyntaxError as exc:
            raise DataValidationError(exc.problem) from None
    return None


def _study_from(doc: dict) -> Study:
    """The study a document declares; keys with problems are left out (a best effort when
    there are problems), but a declared analyte keeps its name so that the data files are
    checked against it."""
    from ctkinetics.data.study_schema import AnalyteSection, Dose, StudySection
    from ctkinetics.schema import salvage

    study = salvage(StudySection, doc.get("study")) if isinstance(doc.get("study"), dict) else None
    levels = doc.get("dose_levels") if isinstance(doc.get("dose_levels"), dict) else {}
    dose_levels = {str(k): v for k, v in levels.items() if _valid(Dose, v)}
    analytes = {}
    for name, raw in (doc.get("analytes") or {}).items() if isinstance(doc.get("analytes"), dict) else ():
        a = salvage(AnalyteSection, raw) if isinstance(raw, dict) else None
        raw = raw if isinstance(raw, dict) else {}
        lloq = a.lloq if a is not None and a.lloq is not None else math.nan
        analytes[str(name)] = Analyte(str(name), a.unit if a else str(raw.get("unit", "")), float(lloq),
                                      a.kind if a else str(raw.get("kind", "")))
    formats = doc.get("formats") if isinstance(doc.get("formats"), dict) else {}
    return Study.build(study.name if study else "", dose_levels, design_from(doc), analytes, formats,
                       (study.start_date if study else None) or "2026-01-01", protocol_from(doc))


def _valid(tp, value) -> bool:
    from pydantic import ValidationError

    try:
        _adapter(tp).validate_python(value)
        return True
    except ValidationError:
        return False


@functools.cache
def _adapter(tp):
    from pydantic import TypeAdapter

    return TypeAdapter(tp, config={"strict": True})
