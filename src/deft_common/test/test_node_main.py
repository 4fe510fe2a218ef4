"""run_node's stop: a clean stop exits 0; a stop that hangs prints the stacks and exits 1."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

# A node process whose begin_shutdown() returns at once or never. It prints 'spinning' once its
# executor runs, so the test signals it only after the signal handlers are installed.
NODE = textwrap.dedent("""
    import sys, time
    from rclpy.node import Node
    from deft_common import node_main

    node_main.STOP_TIMEOUT = {timeout}

    class Sleepy(Node):
        def __init__(self):
            super().__init__('sleepy_{pid}')
            self.create_timer(0.05, self.tick)
            self.said = False

        def tick(self):
            if not self.said:
                print('spinning', flush=True)
                self.said = True

        def begin_shutdown(self):
            time.sleep({hang})  # a cleanup stuck in a driver or a library

    raise SystemExit(node_main.run_node(Sleepy, [sys.argv[0]], threads=1))
""")


def run(hang: float, timeout: float):
    src = NODE.format(timeout=timeout, hang=hang, pid=os.getpid())
    proc = subprocess.Popen([sys.executable, '-c', src], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'spinning', proc.stderr.read()
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout + 30)
        return proc.returncode, time.monotonic() - start, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.integration
def test_clean_stop_exits_0_without_stacks():
    code, took, err = run(hang=0.0, timeout=10.0)
    assert code == 0, err
    assert 'Timeout' not in err and 'Traceback' not in err, err
    assert took < 10.0


@pytest.mark.integration
def test_a_hung_stop_prints_where_it_hangs_and_exits_1():
    code, took, err = run(hang=600.0, timeout=2.0)
    assert code == 1, err
    assert 1.5 < took < 20.0  # the watchdog, not the 600 s sleep, ended it
    assert 'Timeout (0:00:02)' in err, err
    assert 'begin_shutdown' in err, err  # the stack shows where the stop was stuck
