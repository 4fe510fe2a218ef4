"""
`deft_panel`: the DEFT operator panel in its own window, without rqt.

    deft_panel                      # namespace /deft
    deft_panel --namespace /robot2 --ros-args --log-level warn

rclpy spins the panel's node on a background thread; its callbacks reach the widgets by Qt signals.
"""

import argparse
import signal
import sys
import threading
from typing import Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from deft_common.executors import PoolExecutor


class PanelNode:
    """The standalone panel's node and the executor thread spinning it."""

    def __init__(self, namespace: str = '/deft', name: str = 'deft_panel'):
        self.node = Node(name, namespace=namespace)
        self.executor = PoolExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=2.0)
        self.node.destroy_node()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Show the panel until its window is closed."""
    parser = argparse.ArgumentParser(
        prog='deft_panel', description=__doc__.split('\n\n')[0].strip().replace('`', ''),
        epilog='Other arguments go to ROS (--ros-args ...).')
    parser.add_argument('--namespace', default='/deft', help='namespace of the DEFT graph')
    argv = sys.argv[1:] if argv is None else list(argv)
    opts, rest = parser.parse_known_args(argv)
    from qtpy.QtCore import QTimer  # after --help, which needs no display
    from qtpy.QtWidgets import QApplication

    from deft_rqt.panel import DeftPanel
    from deft_rqt.ros_link import RosLink

    app = QApplication.instance() or QApplication([sys.argv[0]])
    rclpy.init(args=rest)
    ros = PanelNode(opts.namespace)
    link = RosLink(ros.node)
    panel = DeftPanel(link)
    panel.resize(1100, 640)
    panel.show()
    # Ctrl-C closes the window; the timer gives Python a moment to run its signal handler.
    signal.signal(signal.SIGINT, lambda *_: app.quit())
    tick = QTimer()
    tick.timeout.connect(lambda: None)
    tick.start(200)
    try:
        return app.exec() if hasattr(app, 'exec') else app.exec_()
    except KeyboardInterrupt:
        return 0
    finally:
        panel.timer.stop()
        link.close()
        ros.close()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
