#!/usr/bin/env bash
# Source ROS 2 and the DEFT workspace, then run the command.
set -e
source "/opt/ros/${ROS_DISTRO}/setup.bash"
source /deft/install/setup.bash
exec "$@"
