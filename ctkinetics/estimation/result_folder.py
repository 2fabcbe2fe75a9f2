"""Folders of the uncertainty results (bootstrap, SIR, NPDE, covariate search): their tables
through the one CSV writer (:mod:`ctkinetics.outputs`) plus one JSON file of metadata, and
the reader that gives the tables back with their column types.

>>> write_tables("out/", {"t.csv": frame}, "meta.json", {"kind": "demo", "format": 1})  # doctest: +SKIP
>>> meta, tables = read_tables("out/", ["t.csv"], "meta.json", "demo")                 # doctest: +SKIP
"""
from __future__ import annotations

import json
from pathlib import Path

#: Format of the JSON files written here; a reader refuses a newer one.
FORMAT = 1


def write_tables(folder, tables: dict, json_name: str, meta: dict) -> list:
    """Write ``tables`` (name -> DataFrame) and ``json_name`` into an open
    :class:`~ctkinetics.outputs.OutputFolder` or, given a path, a new atomic folder."""
    from ctkinetics.outputs import OutputFolder

    own = not isinstance(folder, OutputFolder)
    out = OutputFolder(folder) if own else folder
    if own:
        out.start()
    for name, table in tables.items():
        out.write_csv(name, table)
    out.write_text(json_name, json.dumps(meta, indent=2))
    if own:
        out.commit()
    return [*tables, json_name]


def read_tables(folder, names, json_name: str, kind: str):
    """``(meta, {name: table})`` of a folder written by :func:`write_tables`; refuses a
    JSON file of another kind or a newer format."""
    from ctkinetics.errors import OutputError
    from ctkinetics.outputs import read_table

    folder = Path(folder)
    meta = json.loads((folder / json_name).read_text())
    if meta.get("kind") != kind:
        raise OutputError(f"{folder}/{json_name} does not hold a {kind} result")
    if int(meta.get("format", 0)) > FORMAT:
        raise OutputError(f"{folder}/{json_name} has format {meta['format']}; this "
                          f"ctkinetics reads up to {FORMAT}")
    return meta, {n: read_table(folder, n) for n in names}


class FolderResult:
    """What the uncertainty results share: their tables and metadata written into a folder
    and read back into an equal result. A subclass (a frozen dataclass) names

    - ``FILES``: (field, file name) of each table,
    - ``JSON`` and ``KIND``: the metadata file and the kind it records,
    - ``META``: the fields kept in that file (JSON-ready: dicts, lists, numbers, text);
    - ``OPTIONAL``: fields of tables that folders of earlier versions lack (read as the
      field's default).
    """

    FILES = ()
    OPTIONAL = ()
    JSON = ""
    KIND = ""
    META = ()

    def tables(self) -> dict:
        """File name -> table, as they are written."""
        return {name: getattr(self, f) for f, name in self.FILES}

    def meta(self) -> dict:
        from ctkinetics.jsonable import jsonable

        return jsonable({"format": FORMAT, "kind": self.KIND,
                         **{k: getattr(self, k) for k in self.META}})

    def write(self, folder) -> list:
        """Write the tables and the JSON file into an open
        :class:`~ctkinetics.outputs.OutputFolder` (or a path: a new atomic folder)."""
        return write_tables(folder, self.tables(), self.JSON, self.meta())

    @classmethod
    def read(cls, folder):
        """The result a folder written by :meth:`write` holds."""
        present = [(f, n) for f, n in cls.FILES
                   if f not in cls.OPTIONAL or (Path(folder) / n).exists()]
        meta, t = read_tables(folder, [n for _, n in present], cls.JSON, cls.KIND)
        return cls(**{f: t[n] for f, n in present}, **{k: meta[k] for k in cls.META})


__all__ = ["write_tables", "read_tables", "FORMAT", "FolderResult"]
