"""The moveit_py test double (test/moveit_double.py), installed as `moveit.planning`."""

import importlib.util
from pathlib import Path
import sys
import types

import pytest

# The double is test code, not part of the installed package. Pytest's importlib mode puts no test
# folder on sys.path, so the test modules import it by this name, registered here (conftest.py
# is imported before the test modules of its folder).
DOUBLE = 'deft_arm_test_moveit_double'
_spec = importlib.util.spec_from_file_location(
    DOUBLE, Path(__file__).with_name('moveit_double.py'))
moveit_double = importlib.util.module_from_spec(_spec)
sys.modules[DOUBLE] = moveit_double
_spec.loader.exec_module(moveit_double)
World = moveit_double.World


@pytest.fixture
def world(monkeypatch):
    w = World()
    planning = w.module()
    package = types.ModuleType('moveit')
    package.planning = planning
    monkeypatch.setitem(sys.modules, 'moveit', package)
    monkeypatch.setitem(sys.modules, 'moveit.planning', planning)
    return w
