"""Atomic output folders and files: complete or not there at all.

:class:`OutputFolder` is how every ``ctk`` command writes a folder:

1. ``OutputFolder(target, inputs=...)`` checks the target before any computation (a file
   where a folder is expected, a folder that cannot be written, an output that is or holds
   an input, a non-empty folder that ctkinetics did not write) and raises
   :class:`~ctkinetics.errors.OutputError` (exit 2);
2. the files are written into a fresh hidden folder beside the target (``.NAME.ctk-tmp-*``),
   never into the target itself;
3. :meth:`OutputFolder.commit` writes ``manifest.json`` last (files, SHA-256, command,
   version, status) and then swaps the new folder into place (one atomic exchange where the
   system has it, else two renames), removing the previous run's folder whole — files of
   another run are never mixed in.

A run killed at any point leaves either the previous complete folder or the new complete one
(or, between the two renames, none, with the previous one kept as ``.NAME.ctk-old-*``); a
failed write (a full disk) removes the unfinished folder and raises
:class:`~ctkinetics.errors.OutputWriteError`. :func:`atomic_file` does the same for a single
file (temporary file beside it, then ``os.replace``).

>>> with OutputFolder(tmp / "out", command="ctk demo") as out:      # doctest: +SKIP
...     out.write_csv("table.csv", df)
...     out.commit()
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import os
import shutil
import tempfile
from pathlib import Path

from ctkinetics.errors import OutputError, OutputWriteError
from ctkinetics.outputs import faults, manifest as mf

_CHUNK = 1 << 16


def _resolved(p) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(p))))


def _is_within(inner: Path, outer: Path) -> bool:
    try:
        inner.relative_to(outer)
        return True
    except ValueError:
        return False


def _writable_parent(target: Path, what: str) -> None:
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{what} {target}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {target}: cannot write in {parent} (permission denied)")


def _check_inputs(target: Path, inputs, what: str) -> None:
    for raw in inputs or ():
        if raw is None:
            continue
        src = _resolved(raw)
        if src == target:
            raise OutputError(f"{what} {target} is the input {raw}: choose another output")
        if _is_within(src, target):
            raise OutputError(f"{what} {target} holds the input {raw}; writing there would "
                              "replace it: choose another output folder")
        if src.is_dir() and target.exists() and _is_within(target, src):
            raise OutputError(f"{what} {target} would replace a file of the input folder {raw}: "
                              "choose another output")


def check_folder(target, inputs=()) -> Path:
    """Raise :class:`OutputError` if ``target`` cannot take an output folder; the resolved path.

    Refused: a file at ``target``; a folder that cannot be written in; ``target`` equal to an
    input or holding one; an existing folder that is not empty and was not written by
    ctkinetics (no manifest, or files its manifest does not list: they would be lost).
    """
    t = _resolved(target)
    what = "output folder"
    if t.exists() and not t.is_dir():
        raise OutputError(f"{what} {target} is a file, not a folder")
    _check_inputs(t, inputs, what)
    _writable_parent(t, what)
    if t.is_dir():
        present = [n for n in mf.listing(t)]
        if present:
            m = mf.read(t)
            foreign = sorted(set(present) - ({mf.NAME} | set(m.names if m else ())))
            if m is None or foreign:
                shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
                raise OutputError(
                    f"{what} {target} holds files that ctkinetics did not write ({shown}); "
                    "they would be replaced: choose a new or empty folder")
    return t


def check_file(target, inputs=()) -> Path:
    """Raise :class:`OutputError` if ``target`` cannot take an output file."""
    t = _resolved(target)
    if t.is_dir():
        raise OutputError(f"output file {target} is a folder")
    if t.exists() and not os.access(t, os.W_OK):
        raise OutputError(f"output file {target} cannot be written (permission denied)")
    _check_inputs(t, inputs, "output file")
    _writable_parent(t, "output file")
    return t


# --------------------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_ACTIVE: set = set()  # temporary folders of this process still being written


def _remove_stale(target: Path) -> None:
    """Leftovers of runs that were killed (their process is gone): unfinished folders are
    removed; a previous complete folder set aside just before a kill is put back."""
    for p in sorted(target.parent.glob(f".{target.name}.ctk-*")):
        kind, _, rest = p.name.rsplit(".ctk-", 1)[-1].partition("-")
        pid = rest.split("-")[0]
        if p in _ACTIVE or (pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid))):
            continue
        if kind == "old" and not target.exists() and not mf.verify(p):
            os.rename(p, target)
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _CheckedWriter(io.TextIOBase):
    """A text file whose writes pass the fault-injection checkpoints (chunk by chunk)."""

    def __init__(self, fh, where: str):
        self._fh, self._where = fh, where

    def write(self, text: str) -> int:
        for i in range(0, len(text), _CHUNK):
            part = text[i:i + _CHUNK]
            faults.checkpoint(self._where, partial=lambda p=part: self._fh.write(p[:len(p) // 2]))
            self._fh.write(part)
        return len(text)

    def flush(self) -> None:
        self._fh.flush()


class OutputFolder:
    """An output folder written atomically (see the module docstring).

    Parameters
    ----------
    target : path
        The folder the user named (created; a previous ctkinetics output there is replaced).
    inputs : sequence of paths
        Files and folders read by the command: the output may not be one of them or hold one.
    command : str, optional
        The command line, recorded in the manifest.
    """

    def __init__(self, target, *, inputs=(), command: str | None = None):
        self.target = check_folder(target, inputs)
        self.shown = Path(target)
        self.command = command
        self.tmp: Path | None = None
        self.tables: dict = {}
        self.committed = False

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> "OutputFolder":
        self.start()
        return self

    def start(self) -> "OutputFolder":
        """Create the hidden temporary folder beside the target (idempotent)."""
        if self.tmp is None:
            parent = self.target.parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
                _remove_stale(self.target)
                self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.ctk-tmp-{os.getpid()}-",
                                                 dir=parent))
                _ACTIVE.add(self.tmp)
            except OSError as exc:
                raise OutputError(f"output folder {self.shown}: cannot create it "
                                  f"({exc.strerror or exc})") from None
        return self

    def __exit__(self, kind, exc, tb) -> None:
        _ACTIVE.discard(self.tmp)
        if isinstance(exc, faults.InjectedCrash):
            return  # like a kill: nothing is cleaned up
        if not self.committed:
            self.discard()
        if isinstance(exc, OSError):
            raise OutputWriteError(f"cannot write the output folder {self.shown}: "
                                   f"{exc.strerror or exc}"
                                   + (f" ({Path(exc.filename).name})" if exc.filename else "")
                                   + "; nothing was replaced") from exc

    def discard(self) -> None:
        if self.tmp is not None:
            _ACTIVE.discard(self.tmp)
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    # -- writing -----------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """Where ``name`` is written (inside the temporary folder)."""
        self.start()
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @contextlib.contextmanager
    def open_text(self, name: str):
        """A text file in the folder, UTF-8; written in chunks (streaming)."""
        p = self.path(name)
        with open(p, "w", encoding="utf-8", newline="") as fh:
            yield _CheckedWriter(fh, name)

    def write_text(self, name: str, text: str) -> Path:
        with self.open_text(name) as fh:
            fh.write(text)
        return self.target / name

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        with open(p, "wb") as fh:
            faults.checkpoint(name, partial=lambda: fh.write(data[:len(data) // 2]))
            fh.write(data)
        return self.target / name

    def write_csv(self, name: str, df) -> Path:
        """A spreadsheet-safe CSV (:mod:`ctkinetics.outputs.spreadsheet`); its column types
        go into the manifest so that :func:`ctkinetics.outputs.read_table` reads it back."""
        from ctkinetics.outputs.spreadsheet import csv_text
        from ctkinetics.outputs.tables import schema

        import pandas as pd

        frame = pd.DataFrame(df)
        self.tables[name] = {"columns": schema(frame)}
        return self.write_text(name, csv_text(frame))

    # -- commit --------------------------------------------------------------------------
    def commit(self, failures=(), created: str | None = None) -> mf.Manifest:
        """Write the manifest (last) and swap the folder into place."""
        from ctkinetics import __version__

        self.start()
        files = []
        for name in mf.listing(self.tmp):
            p = self.tmp / name
            files.append({"name": name, "bytes": p.stat().st_size, "sha256": mf.sha256(p)})
        failures = tuple(str(f) for f in failures)
        m = mf.Manifest(status=mf.WITH_FAILURES if failures else mf.COMPLETE,
                        files=tuple(files), command=self.command, ctkinetics=__version__,
                        created=created or timestamp(), failures=failures,
                        tables={k: self.tables[k] for k in sorted(self.tables)})
        import json

        text = json.dumps(m.to_dict(), indent=2, ensure_ascii=False) + "\n"
        p = self.tmp / mf.NAME
        with open(p, "w", encoding="utf-8") as fh:
            faults.checkpoint(mf.NAME, partial=lambda: fh.write(text[:len(text) // 2]))
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(self.tmp)
        self._swap()
        self.committed = True
        return m

    def _swap(self) -> None:
        t, tmp = self.target, self.tmp
        faults.checkpoint("rename into place")
        if t.exists():
            if _exchange(tmp, t):
                _fsync_dir(t.parent)
                shutil.rmtree(tmp, ignore_errors=True)   # now holds the previous run
            else:
                old = t.parent / f".{t.name}.ctk-old-{os.getpid()}-{os.urandom(3).hex()}"
                os.rename(t, old)
                try:
                    faults.checkpoint("between renames")
                    os.rename(tmp, t)
                except Exception:
                    os.rename(old, t)   # put the previous folder back
                    raise
                _fsync_dir(t.parent)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, t)
            _fsync_dir(t.parent)
        _ACTIVE.discard(tmp)
        self.tmp = None


def timestamp() -> str:
    """Now (UTC, ISO 8601, seconds), or ``SOURCE_DATE_EPOCH`` when it is set (the
    reproducible-builds convention)."""
    from datetime import datetime, timezone

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit()
            else datetime.now(timezone.utc))
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@contextlib.contextmanager
def atomic_file(target, *, inputs=(), checked: bool = False, binary: bool = False):
    """Write one file atomically: yields a file object on a temporary file beside ``target``,
    which replaces ``target`` only when the block ends without error (``checked=True``: the
    target was already checked with :func:`check_file`)."""
    t = _resolved(target) if checked else check_file(target, inputs)
    try:
        t.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{t.name}.ctk-tmp-{os.getpid()}-", dir=t.parent)
    except OSError as exc:
        raise OutputError(f"output file {target}: {exc.strerror or exc}") from None
    tmp = Path(tmp)
    ok = False
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else
                                                       {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh if binary else _CheckedWriter(fh, t.name)
            fh.flush()
            os.fsync(fh.fileno())
        faults.checkpoint(f"replace {t.name}")
        os.replace(tmp, t)
        ok = True
    except faults.InjectedCrash:
        ok = True  # leave the temporary file, as a kill would
        raise
    except OSError as exc:
        raise OutputWriteError(f"cannot write {target}: {exc.strerror or exc}; "
                               "nothing was replaced") from exc
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_csv_file(target, df, *, inputs=(), checked: bool = False) -> Path:
    """One spreadsheet-safe CSV file, written atomically."""
    from ctkinetics.outputs.spreadsheet import csv_text

    with atomic_file(target, inputs=inputs, checked=checked) as fh:
        fh.write(csv_text(df))
    return Path(target)
