"""The moveit_py test double (test/moveit_double.py), installed as `moveit.planning`."""

import importlib.util
from pathlib import Path
import sys
import types

import pytest

# The double and the goal-handle helpers are test code, not part of the installed package.
# Pytest's importlib mode puts no test folder on sys.path, so the test modules import them by
# these names, registered here (conftest.py is imported before the test modules of its folder).
DOUBLE = 'deft_arm_test_moveit_double'
HANDLE = 'deft_arm_test_goal_handle'


def _register(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


moveit_double = _register(DOUBLE, 'moveit_double.py')
_register(HANDLE, 'goal_handle.py')
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
