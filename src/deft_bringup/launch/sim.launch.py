"""Launch the DEFT graph against the simulated twin (the same graph as `deft_run sim`)."""

from deft_bringup.launch_common import launch_description


def generate_launch_description():
    """Declare the sim profile's launch arguments and start its nodes."""
    return launch_description('sim')
