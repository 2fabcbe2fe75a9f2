"""ctkinetics.cli.startup: a command's imports run without cyclic-GC passes, and the collector
is left as it was (on, or off when the caller switched it off)."""
import gc
import sys

from ctkinetics.cli.startup import imports_without_gc


def _fresh_module(tmp_path, name):
    (tmp_path / f"{name}.py").write_text("class A:\n    pass\n\nobjects = [A() for _ in range(100)]\n")
    sys.path.insert(0, str(tmp_path))
    return name


def test_new_imports_run_without_gc_and_are_frozen(tmp_path):
    name = _fresh_module(tmp_path, "ctk_startup_probe_a")
    frozen = gc.get_freeze_count()
    try:
        with imports_without_gc():
            enabled_inside = gc.isenabled()
            __import__(name)
        assert not enabled_inside
        assert gc.isenabled()
        # the module's objects (its class, 100 instances, the list) left the collector's reach
        assert gc.get_freeze_count() >= frozen + 100
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
        gc.unfreeze()


def test_nothing_new_imported_leaves_the_collector_alone():
    frozen = gc.get_freeze_count()
    with imports_without_gc():
        import json  # noqa: F401 - imported already by pytest
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_a_collector_switched_off_stays_off(tmp_path):
    name = _fresh_module(tmp_path, "ctk_startup_probe_b")
    frozen = gc.get_freeze_count()
    gc.disable()
    try:
        with imports_without_gc():
            __import__(name)
        assert not gc.isenabled()
        assert gc.get_freeze_count() == frozen
    finally:
        gc.enable()
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
