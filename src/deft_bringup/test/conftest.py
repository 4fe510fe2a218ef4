"""Fixtures that start the real graph as separate processes over DDS and always tear it down."""

from pathlib import Path
import time

import pytest

from deft_bringup.client import EpisodeClient
from deft_bringup.testing import FAST_SIM, Probe, start_graph

LOG_ROOT = Path(__file__).resolve().parents[3] / '.ros' / 'test-logs'
CONFIG = Path(__file__).resolve().parents[1] / 'config'


@pytest.fixture
def make_graph(ros):
    """Return a factory of graphs (config from the source tree, logs under .ros/test-logs)."""
    def make(name, **kw):
        return start_graph(name, LOG_ROOT, config_dir=CONFIG, **kw)
    return make


@pytest.fixture(scope='module')
def graph(ros):
    """Start the whole sim graph, one process per node; stop it whatever happens."""
    g = start_graph('graph', LOG_ROOT, overrides=FAST_SIM, config_dir=CONFIG)
    with g:
        yield g
    for name, proc in g.procs.items():
        assert proc.poll() is not None, f'{name} still running after teardown'


@pytest.fixture(scope='module')
def episodes(graph):
    client = EpisodeClient(name='test_episode_client')
    deadline = time.monotonic() + 60.0
    while not client.wait_for_server(timeout=0.5):
        dead = graph.exited()
        assert not dead, 'nodes died at start-up: ' + '; '.join(
            f'{n} ({rc}): {graph.tail(n)}' for n, rc in dead.items())
        assert time.monotonic() < deadline, 'run_episode did not come up within 60 s'
    yield client
    client.close()


@pytest.fixture(scope='module')
def probe(ros):
    p = Probe(name='test_probe')
    yield p
    p.close()
