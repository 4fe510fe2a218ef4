"""The torch threads helper: intra-op threads in every thread, the wait policy before torch."""

import os
import subprocess
import sys
import threading

import pytest

from deft_common.torch_threads import (
    TorchThreads,
    check_wait_policy,
    configure_torch_threads,
    set_wait_policy,
)


@pytest.fixture
def restore_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run_python(code: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    environ.update(env, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          check=True, env=environ).stdout.strip()


@pytest.mark.parametrize('threads', [1, 2])
def test_the_threads_hold_in_the_callers_and_other_threads(restore_threads, threads):
    import torch

    state = configure_torch_threads(threads, '')
    assert state.threads == torch.get_num_threads() == threads
    seen = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [threads]  # an executor thread serving a callback sees the same


def test_zero_keeps_torchs_default(restore_threads):
    import torch

    torch.set_num_threads(2)
    assert configure_torch_threads(0, '').threads == 2


def test_the_wait_policy_is_set_before_torch_is_imported():
    code = ('import sys, os; from deft_common.torch_threads import configure_torch_threads; '
            "assert 'torch' not in sys.modules; s = configure_torch_threads(1, 'passive'); "
            "print(s.threads, s.wait_policy, repr(s.note), os.environ['OMP_WAIT_POLICY'])")
    assert run_python(code) == "1 PASSIVE '' PASSIVE"


def test_after_torch_the_policy_in_force_is_reported_not_changed():
    code = ('import torch; from deft_common.torch_threads import configure_torch_threads; '
            "s = configure_torch_threads(1, 'PASSIVE'); print(s.wait_policy or '-'); "
            'print(s.describe())')
    first, line = run_python(code).splitlines()
    assert first == '-' and 'torch was imported before with the OpenMP default' in line
    assert line.startswith('torch: 1 intra-op thread, OMP_WAIT_POLICY=(unset) (')
    same = run_python(code, OMP_WAIT_POLICY='PASSIVE').splitlines()
    assert same == ['PASSIVE', 'torch: 1 intra-op thread, OMP_WAIT_POLICY=PASSIVE']


def test_an_empty_policy_keeps_the_environment(monkeypatch):
    monkeypatch.setenv('OMP_WAIT_POLICY', 'ACTIVE')
    assert set_wait_policy('') == '' and os.environ['OMP_WAIT_POLICY'] == 'ACTIVE'


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match='expected PASSIVE, ACTIVE or empty'):
        check_wait_policy('sleepy')
    with pytest.raises(ValueError, match='torch_threads -1'):
        configure_torch_threads(-1)
    assert TorchThreads(2, 'ACTIVE').describe() == \
        'torch: 2 intra-op threads, OMP_WAIT_POLICY=ACTIVE'


def test_importing_the_helper_does_not_import_torch():
    code = "import sys, deft_common.torch_threads; print('torch' in sys.modules)"
    assert run_python(code) == 'False'


def test_the_benches_share_the_nodes_defaults_on_the_command_line():
    import argparse

    from deft_common.torch_threads import add_thread_arguments
    parser = argparse.ArgumentParser()
    add_thread_arguments(parser)
    opts = parser.parse_args([])
    assert (opts.threads, opts.omp_wait_policy) == (1, 'PASSIVE')
    assert parser.parse_args(['--omp-wait-policy', 'keep']).omp_wait_policy == 'keep'
    with pytest.raises(SystemExit):
        parser.parse_args(['--omp-wait-policy', 'spin'])
