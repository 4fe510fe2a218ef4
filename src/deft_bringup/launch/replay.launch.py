"""
Replay recorded bags into perception and affordance (graph `replay`).

    ros2 launch deft_bringup replay.launch.py bags:=~/.ros/deft/runs/cup1 rate:=2.0

The bag player publishes the recorded camera, hand and episode topics at their recorded timing;
perception/segment and affordance/predict then answer on the recorded frames.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from deft_bringup.graph import ARGUMENTS, describe

PROFILE = 'replay'
REQUIRED = ('bags',)  # declared without a default: launch refuses to start without them


def _nodes(context, *args, **kwargs):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in ARGUMENTS}
    return [Node(**node.launch_kwargs()) for node in describe(PROFILE, values)]


def _declare(argument):
    if argument.name in REQUIRED:
        return DeclareLaunchArgument(argument.name, description=argument.description)
    return DeclareLaunchArgument(argument.name, default_value=argument.default,
                                 description=argument.description)


def generate_launch_description():
    """Declare the graph's launch arguments (bags required) and start its nodes."""
    return LaunchDescription([_declare(a) for a in ARGUMENTS] + [OpaqueFunction(function=_nodes)])
