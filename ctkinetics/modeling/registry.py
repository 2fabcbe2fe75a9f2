"""The model library: finding model files by name, loading them once.

Built-in models live in ``models/*.toml`` at the top of the source tree; the wheel ships
that folder as ``ctkinetics/_models`` (see pyproject). :func:`library_dir` looks in the
installed package first and falls back to the source tree, so an editable install, a plain
``pip install .`` and a checkout all see the same library. Adding a model is adding a file.
"""
from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from ctkinetics.errors import ModelFileError
from ctkinetics.modeling.model import Model
from ctkinetics.modeling.modelfile import parse_model_file

SUFFIX = ".toml"


@functools.lru_cache(maxsize=1)
def library_dir() -> Path:
    """Folder of the built-in model files (wheel: ctkinetics/_models; source: models/)."""
    import ctkinetics

    try:
        packaged = Path(str(resources.files("ctkinetics") / "_models"))
        if packaged.is_dir() and any(packaged.glob("*" + SUFFIX)):
            return packaged
    except (ModuleNotFoundError, TypeError, NotADirectoryError):  # pragma: no cover - odd installs
        pass
    return Path(ctkinetics.__file__).resolve().parent.parent / "models"


def list_models() -> list[str]:
    """Names of the built-in models, sorted."""
    folder = library_dir()
    return sorted(p.stem for p in folder.glob("*" + SUFFIX)) if folder.is_dir() else []


def model_path(name_or_path) -> Path:
    """The file of a built-in model name, or the given path of a model file."""
    text = str(name_or_path)
    candidate = Path(text)
    if text.endswith(SUFFIX) or candidate.parent != Path(".") or candidate.exists():
        if not candidate.is_file():
            raise ModelFileError(text, "no such model file")
        return candidate
    path = library_dir() / (text + SUFFIX)
    if not path.is_file():
        known = ", ".join(list_models()) or "none found"
        raise ModelFileError(text, f"unknown model (built-in models: {known}; or give a path to a .toml file)")
    return path


def load_model(name_or_path) -> Model:
    """Load a model by built-in name (``'stein2019'``) or from a ``.toml`` path.

    Models are immutable, so a file is parsed once and cached until it changes on disk.

    Raises
    ------
    ModelFileError
        Unknown name, unreadable, invalid or unsafe file (with file, line and token).
    """
    if isinstance(name_or_path, Model):
        return name_or_path
    path = model_path(name_or_path)
    stat = path.stat()
    return _load(str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(path))


@functools.lru_cache(maxsize=64)
def _load(resolved: str, mtime_ns: int, size: int, shown: str) -> Model:
    spec = parse_model_file(shown)
    return Model(**spec)
