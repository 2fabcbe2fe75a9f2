"""The registry of input/output formats: name -> reader, writer, detector.

``load_study`` and ``ctk convert`` look formats up here; adding a format is one entry.
"""
from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ctkinetics.data.dataset import Dataset
from ctkinetics.errors import DataValidationError, DataWarning, SettingsError


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    read: Callable[..., Dataset]
    write: Callable[..., list]
    detect: Callable[[Path], bool]


def _lazy(module: str, name: str) -> Callable:
    """``ctkinetics.data.<module>.<name>``, imported when first called: reading a study folder
    does not import the NONMEM and SDTM readers (detection tries the tidy folder first)."""
    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(f"ctkinetics.data.{module}"), name)(*args, **kwargs)
    call.__name__ = name
    return call


def _registry() -> dict[str, Format]:
    return {
        "tidy": Format("tidy", "study folder: study.toml, subjects.csv, observations.csv[, safety.csv]",
                       lambda p, **kw: _lazy("tidy", "read_study_folder")(p), _lazy("tidy", "write_study_folder"),
                       lambda p: p.is_dir() and (p / "observations.csv").exists()),
        "nonmem": Format("nonmem", "NONMEM/nlmixr2/Monolix CSV (ID, TIME, DV, EVID, AMT, CMT|DVID, CENS, ...)",
                         _lazy("nonmem", "read_nonmem"), _lazy("nonmem", "write_nonmem"), _lazy("nonmem", "detect")),
        "sdtm": Format("sdtm", "CDISC SDTM folder: DM, EX and CP or PC (.xpt or .csv)",
                       _lazy("sdtm", "read_sdtm"), _lazy("sdtm", "write_sdtm"), _lazy("sdtm", "detect")),
    }


def format_names() -> list[str]:
    return list(_registry())


def get_format(name: str) -> Format:
    reg = _registry()
    if name not in reg:
        raise SettingsError(f"unknown format '{name}' (known: {', '.join(reg)})")
    return reg[name]


def load_study(path, format: str | None = None, *, warn: bool = True, **options) -> Dataset:
    """Read a study in any registered format into a validated :class:`Dataset`.

    Parameters
    ----------
    path : str or Path
        A study folder (tidy), a NONMEM CSV file or a folder holding one, or an SDTM folder.
    format : {'tidy', 'nonmem', 'sdtm'}, optional
        Detected from the path when omitted.
    warn : bool
        Emit each of the dataset's warnings as a :class:`~ctkinetics.errors.DataWarning`.
    **options
        Format options, e.g. ``study_toml=`` (NONMEM/SDTM) or ``analyte_map={1: 'transgene'}``.

    Raises
    ------
    DataValidationError
        Every problem found, each naming the file, row and column.

    Examples
    --------
    >>> ds = load_study("data/sample/sle_cohort")          # doctest: +SKIP
    >>> ds.observations.head()                              # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise DataValidationError.at(p, None, None, "no such file or folder")
    if format is None:
        for fmt in _registry().values():
            if fmt.detect(p):
                format = fmt.name
                break
        else:
            raise DataValidationError.at(
                p, None, None,
                "cannot tell the format: expected a study folder with study.toml and observations.csv, "
                "a NONMEM CSV, or an SDTM folder (give --format)")
    ds = get_format(format).read(p, **options)
    if warn:
        for w in ds.warnings:
            _warnings.warn(w, DataWarning, stacklevel=2)
    return ds


def write_study(dataset: Dataset, path, format: str, warnings: list | None = None) -> list:
    """Write ``dataset`` in ``format``; returns the files written.

    Changes of form the format needs (a covariate renamed because its name is reserved, mapped
    back in study.toml) are appended to ``warnings`` when given, else emitted as
    :class:`~ctkinetics.errors.DataWarning`. Values the format cannot hold raise
    :class:`~ctkinetics.errors.DataValidationError` before anything is written.
    """
    notes: list[str] = []
    files = get_format(format).write(dataset, Path(path), warnings=notes)
    if warnings is not None:
        warnings += notes
    else:
        for n in notes:
            _warnings.warn(n, DataWarning, stacklevel=2)
    return files
