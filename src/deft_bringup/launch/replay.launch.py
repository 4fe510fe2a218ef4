"""
Replay recorded bags into perception and affordance (graph `replay`).

    ros2 launch deft_bringup replay.launch.py bags:=~/.ros/deft/runs/cup1 rate:=2.0

The bag player publishes the recorded camera, hand and episode topics at their recorded timing;
perception/segment and affordance/predict then answer on the recorded frames. `bags` is required.
"""

from deft_bringup.launch_common import launch_description


def generate_launch_description():
    """Declare the replay profile's launch arguments (bags required) and start its nodes."""
    return launch_description('replay')
