"""Reading one TOML table of a trial spec with messages that name the offending key.

:class:`Section` wraps a parsed TOML table and its dotted path (``design.accrual``); every
getter validates type and range and raises :class:`~ctkinetics.errors.SettingsError` as
``trial spec <file>: [design] cohort_size must be an integer >= 1, got 'three'``. ``done()``
rejects keys nobody asked for, which catches typos (``cohort_sise``) instead of silently using
a default.
"""
from __future__ import annotations

import math

from ctkinetics.errors import SettingsError

_MISSING = object()


class Section:
    def __init__(self, table, path: str, file: str):
        if not isinstance(table, dict):
            raise SettingsError(f"trial spec {file}: [{path}] must be a table, got {type(table).__name__}")
        self.table, self.path, self.file = table, path, file
        self.used = set()

    def error(self, key: str | None, message: str) -> SettingsError:
        where = f"[{self.path}]" if self.path else "top level"
        name = f" {key}" if key else ""
        return SettingsError(f"trial spec {self.file}: {where}{name} {message}")

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str, default=_MISSING):
        self.used.add(key)
        if key not in self.table:
            if default is _MISSING:
                raise self.error(key, "is required")
            return default
        return self.table[key]

    def section(self, key: str, required: bool = False) -> "Section | None":
        value = self.raw(key, _MISSING if required else None)
        if value is None:
            return None
        return Section(value, f"{self.path}.{key}" if self.path else key, self.file)

    def sections(self, key: str) -> list:
        value = self.raw(key, [])
        if not isinstance(value, list):
            raise self.error(key, "must be an array of tables ([[...]])")
        base = f"{self.path}.{key}" if self.path else key
        return [Section(v, f"{base}[{i + 1}]", self.file) for i, v in enumerate(value)]

    def number(self, key, default=_MISSING, minimum=None, maximum=None, strict_min=False, strict_max=False):
        v = self.raw(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.error(key, f"must be a finite number, got {v!r}")
        v = float(v)
        if minimum is not None and (v < minimum or (strict_min and v == minimum)):
            raise self.error(key, f"must be {'>' if strict_min else '>='} {minimum:g}, got {v:g}")
        if maximum is not None and (v > maximum or (strict_max and v == maximum)):
            raise self.error(key, f"must be {'<' if strict_max else '<='} {maximum:g}, got {v:g}")
        return v

    def integer(self, key, default=_MISSING, minimum=None):
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"must be an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.error(key, f"must be an integer >= {minimum}, got {v!r}")
        return int(v)

    def boolean(self, key, default=_MISSING):
        v = self.raw(key, default)
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false, got {v!r}")
        return v

    def string(self, key, default=_MISSING, choices=None):
        v = self.raw(key, default)
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip():
            raise self.error(key, f"must be a non-empty string, got {v!r}")
        if choices is not None and v not in choices:
            raise self.error(key, f"must be one of {', '.join(sorted(choices))}; got {v!r}")
        return v

    def numbers(self, key, default=_MISSING, length=None, minimum=None, maximum=None, strict=False):
        v = self.raw(key, default)
        if v is None:
            return None
        if not isinstance(v, list) or not v:
            raise self.error(key, f"must be a non-empty array of numbers, got {v!r}")
        out = []
        for x in v:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise self.error(key, f"must hold finite numbers only, got {x!r}")
            if minimum is not None and (x < minimum or (strict and x == minimum)):
                raise self.error(key, f"values must be {'>' if strict else '>='} {minimum:g}, got {x!r}")
            if maximum is not None and (x > maximum or (strict and x == maximum)):
                raise self.error(key, f"values must be {'<' if strict else '<='} {maximum:g}, got {x!r}")
            out.append(float(x))
        if length is not None and len(out) != length:
            raise self.error(key, f"must give one value per dose level ({length}), got {len(out)}")
        return tuple(out)

    def strings(self, key, default=_MISSING):
        v = self.raw(key, default)
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            raise self.error(key, f"must be an array of non-empty strings, got {v!r}")
        return tuple(v)

    def done(self) -> None:
        extra = sorted(set(self.table) - self.used)
        if extra:
            allowed = ", ".join(sorted(self.used)) or "none"
            raise self.error(None, f"has unknown key(s) {', '.join(extra)} (known here: {allowed})")
