"""Launch the DEFT graph against the simulated twin (the same graph as `deft_run sim`)."""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from deft_bringup.graph import ARGUMENTS, describe

PROFILE = 'sim'


def _nodes(context, *args, **kwargs):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in ARGUMENTS}
    return [Node(**node.launch_kwargs()) for node in describe(PROFILE, values)]


def generate_launch_description():
    """Declare the graph's launch arguments and start its nodes."""
    return LaunchDescription(
        [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
         for a in ARGUMENTS]
        + [OpaqueFunction(function=_nodes)])
