import shutil
from pathlib import Path

import pytest

MINI = Path(__file__).resolve().parents[1] / "data" / "mini_study"


@pytest.fixture
def mini(tmp_path) -> Path:
    """A writable copy of the small valid study in tests/data/mini_study."""
    dst = tmp_path / "study"
    shutil.copytree(MINI, dst)
    return dst
