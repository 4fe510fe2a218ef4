"""The panel under test: the real sim graph as processes, one panel node spinning in a thread."""

import os
from pathlib import Path
import time

import pytest

os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')  # before pytest-qt makes the QApplication


from deft_bringup.testing import FAST_SIM, start_graph, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
LOG_ROOT = ROOT / '.ros' / 'test-logs'
CONFIG = ROOT / 'src' / 'deft_bringup' / 'config'


@pytest.fixture(scope='module')
def graph(ros, tmp_path_factory):
    """Start the kinematic sim graph (FAST_SIM), runs in a temporary root; always stop it."""
    overrides = {name: dict(values) for name, values in FAST_SIM.items()}
    overrides['episode']['run_root'] = str(tmp_path_factory.mktemp('runs'))
    g = start_graph('rqt', LOG_ROOT, overrides=overrides, config_dir=CONFIG)
    with g:
        wait_until(lambda: 'ready:' in g.tail('episode'), 90, 'the episode node')
        yield g


@pytest.fixture(scope='module')
def panel(graph, qapp):
    """Show a DeftPanel on its own node once it has discovered the action servers."""
    from deft_rqt.main import PanelNode
    from deft_rqt.panel import DeftPanel
    from deft_rqt.ros_link import RosLink

    ros_node = PanelNode(name='panel_under_test')
    link = RosLink(ros_node.node)
    widget = DeftPanel(link)
    widget.resize(1100, 640)
    widget.show()
    try:
        deadline = time.monotonic() + 30
        while not link.server_ready():
            assert time.monotonic() < deadline, "the episode node's actions were not found"
            qapp.processEvents()
            time.sleep(0.05)
        time.sleep(1.0)  # let discovery settle both ways before the first goal
        yield widget
    finally:
        widget.timer.stop()
        link.close()
        widget.close()
        ros_node.close()
