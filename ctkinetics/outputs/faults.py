"""A fault-injection hook for the output writers (tests only; off unless armed).

Every write of :mod:`ctkinetics.outputs` passes through :func:`checkpoint`. A test arms one
fault at the N-th checkpoint (counted from 1) and checks what the folder looks like after it:

- ``crash``: the process dies there, as with ``kill -9`` (no clean-up runs). In another
  process (environment ``CTKINETICS_FAULT=crash@N``) it ends with ``os._exit(137)``;
  in-process (:func:`arm`) :class:`InjectedCrash` is raised, which the writers do not
  clean up after (it is a ``BaseException``, like a kill it is not an error of theirs).
- ``enospc``: the write fails with ``OSError(ENOSPC)`` ("No space left on device") after
  half of its bytes reached the file, as on a full disk.

``CTKINETICS_FAULT=count`` prints the number of checkpoints passed on exit (to stderr), so a
test can choose random points among them.
"""
from __future__ import annotations

import atexit
import errno
import os
import sys

ENV = "CTKINETICS_FAULT"


class InjectedCrash(BaseException):
    """An injected crash (in-process stand-in for ``kill -9``)."""


class _State:
    kind: str | None = None
    at: int = 0
    passed: int = 0
    in_process: bool = False
    counting: bool = False


_state = _State()


def _from_environment() -> None:
    text = os.environ.get(ENV, "").strip()
    if not text:
        return
    if text == "count":
        _state.counting = True
        atexit.register(lambda: print(f"{ENV}: {_state.passed} checkpoints", file=sys.stderr))
        return
    kind, _, at = text.partition("@")
    if kind in ("crash", "enospc") and at.isdigit():
        _state.kind, _state.at = kind, int(at)


_from_environment()


def arm(kind: str | None, at: int = 0) -> None:
    """Arm one fault in this process (``kind`` None disarms); resets the count."""
    if kind not in (None, "crash", "enospc"):
        raise ValueError(f"unknown fault {kind!r}")
    _state.kind, _state.at, _state.passed, _state.in_process = kind, at, 0, True


def passed() -> int:
    """Checkpoints passed since the last :func:`arm` (or the start of the process)."""
    return _state.passed


def checkpoint(where: str, partial=None) -> None:
    """Called before each write step; ``partial()`` writes half of the pending bytes (the
    ``enospc`` fault calls it first, so the file is left truncated as on a full disk)."""
    _state.passed += 1
    if _state.kind is None or _state.passed != _state.at:
        return
    kind = _state.kind
    _state.kind = None
    if kind == "enospc":
        if partial is not None:
            partial()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), where)
    if _state.in_process:
        raise InjectedCrash(where)
    os._exit(137)  # pragma: no cover - ends the process, as kill -9 would
