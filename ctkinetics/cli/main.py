"""The ``ctk`` command line: argument parsing and printing only.

Subcommands are discovered: every module in :mod:`ctkinetics.cli.commands` that defines
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` becomes ``ctk NAME``.
Adding a command is adding one module. Heavy imports belong inside ``run`` so that
``ctk --help`` stays fast.

Exit codes: 0 success; 2 invalid input or an unusable output path (a clear message, never a
traceback; output paths are checked before any computation); 1 internal error, or outputs that
could not be written (a full disk: the message says so and nothing was replaced); 3 outputs
written completely, but some participants or runs failed (named on stderr and in
``manifest.json``; ``--allow-failures`` makes that 0).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from ctkinetics import __version__
from ctkinetics.errors import InputError, OutputWriteError

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_FAILURES = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on a usage error already; keep that, but without a traceback."""


def _command_modules():
    from ctkinetics.cli import commands

    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if all(hasattr(mod, a) for a in ("NAME", "HELP", "add_arguments", "run")):
            mods.append(mod)
    return sorted(mods, key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ctk", description="Cellular kinetics of CAR-T cell therapies.")
    parser.add_argument("--version", action="version", version=f"ctkinetics {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _one_blas_thread() -> None:
    """A ``ctk`` process runs BLAS on one thread unless its environment says otherwise: its
    matrices are small (covariance steps, η blocks), OpenBLAS's thread pool costs ~0.1 s of
    CPU at every start on a busy machine (``ctk nca`` on 1,000 participants: 0.87 -> 0.74 s),
    and results do not depend on the machine's core count. Local Dask workers inherit it.
    Only before numpy is loaded (a Python session calling :func:`main` keeps its own)."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv=None) -> int:
    from ctkinetics.cli.startup import imports_without_gc

    _one_blas_thread()
    with imports_without_gc():   # the command modules (and numpy): see ctkinetics.cli.startup
        parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # the command line, for manifests
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    try:
        code = args._run(args)
    except InputError as exc:
        print(f"ctk {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except OutputWriteError as exc:
        print(f"ctk {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except BrokenPipeError:
        # the reader of our output went away (`ctk validate STUDY | head`): not an error of ours;
        # point stdout at devnull so the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        print(
            f"ctk {args.command}: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in ctkinetics; please report it with the command you ran.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
