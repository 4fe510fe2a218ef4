"""
The body the launch files share (launch/sim.launch.py, robot.launch.py, replay.launch.py).

Each profile offers only the launch arguments of the graph description that change its graph
(deft_bringup.graph.declared_arguments, which deft_run offers too), with their defaults and
descriptions; a required one (replay's `bags`) is declared without a default, so `ros2 launch`
refuses to start without it. A launch file is then one call:

    from deft_bringup.launch_common import launch_description


    def generate_launch_description():
        return launch_description('sim')

`launch` and `launch_ros` (ROS 2 installs, not installable on the development machines) are
imported only inside launch_description() and the function it hands to OpaqueFunction; the tables
and declared_arguments() are plain Python, tested without them.
"""

from typing import TYPE_CHECKING

from deft_bringup.graph import (  # noqa: F401 (the profile tables, re-exported)
    PROFILE_ARGUMENTS,
    REQUIRED,
    dds_environment,
    declared_arguments,
    describe,
)

if TYPE_CHECKING:  # only for the annotation: launch is imported where it runs
    from launch import LaunchDescription


def _start_nodes(context, profile: str) -> list:
    """Resolve the profile's graph with the launch arguments' values: its launch_ros Nodes."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    values = {name: LaunchConfiguration(name).perform(context)
              for name, _, _ in declared_arguments(profile)}
    return [Node(**node.launch_kwargs()) for node in describe(profile, values)]


def launch_description(profile: str) -> 'LaunchDescription':
    """Return a profile's LaunchDescription: its launch arguments, then its nodes."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable

    # the graph's DDS settings (config/fastdds.xml), unless the environment names a profile
    entities = [SetEnvironmentVariable(name, value) for name, value in dds_environment().items()]
    for name, default, description in declared_arguments(profile):
        if default is None:
            entities.append(DeclareLaunchArgument(name, description=description))
        else:
            entities.append(DeclareLaunchArgument(name, default_value=default,
                                                  description=description))
    entities.append(OpaqueFunction(function=_start_nodes, args=[profile]))
    return LaunchDescription(entities)
