"""The rqt plugin: Plugins -> DEFT -> DEFT operator panel, on rqt's own node (context.node)."""

from rqt_gui_py.plugin import Plugin

from deft_rqt.panel import DeftPanel
from deft_rqt.ros_link import RosLink


class DeftPlugin(Plugin):
    """Builds the panel on rqt's node; rqt spins that node, so the plugin starts no thread."""

    def __init__(self, context):
        super().__init__(context)
        self.setObjectName('DeftPlugin')
        self.link = RosLink(context.node)
        self.widget = DeftPanel(self.link)
        if context.serial_number() > 1:
            self.widget.setWindowTitle(f'DEFT ({context.serial_number()})')
        context.add_widget(self.widget)

    def shutdown_plugin(self):
        """Stop the panel's timer and cancel a goal it still runs."""
        self.widget.timer.stop()
        self.link.close()
