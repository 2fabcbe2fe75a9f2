"""Shared CLI plumbing for outputs: the command line recorded in manifests, ``--allow-failures``
and the exit code of a run in which some participants or runs failed."""
from __future__ import annotations

import shlex
import sys

EXIT_FAILURES = 3  # ctkinetics.cli.main.EXIT_FAILURES (literal: no import cycle)


def command_line(args) -> str:
    """``ctk ...`` as it was called (recorded in the manifest and the report's provenance)."""
    argv = getattr(args, "_argv", None)
    return "ctk " + shlex.join(argv) if argv is not None else f"ctk {args.command}"


def add_allow_failures(parser) -> None:
    parser.add_argument("--allow-failures", action="store_true",
                        help="exit 0 even when some participants or runs failed (they are still "
                             "named on stderr and in manifest.json; default exit code 3)")


def finish(args, failures, what: str = "failed") -> int:
    """Name the failures on stderr; the exit code (0, or 3 unless --allow-failures)."""
    failures = list(failures)
    if not failures:
        return 0
    shown = failures[:20]
    more = f"\n  ... and {len(failures) - 20} more (see manifest.json)" if len(failures) > 20 else ""
    print(f"ctk {args.command}: {len(failures)} {what}:\n  " + "\n  ".join(shown) + more,
          file=sys.stderr)
    return 0 if getattr(args, "allow_failures", False) else EXIT_FAILURES
