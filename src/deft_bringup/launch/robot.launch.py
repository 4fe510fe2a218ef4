"""Launch the DEFT graph on the robot: RGB-D driver topics, Dynamixel hand, arm (graph `robot`)."""

from deft_bringup.launch_common import launch_description


def generate_launch_description():
    """Declare the robot profile's launch arguments and start its nodes."""
    return launch_description('robot')
