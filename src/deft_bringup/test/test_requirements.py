"""Every third-party module the packages import is installed on the robot too.

The robot install (docs/robot.md, docker/Dockerfile) takes ROS 2 from the distribution and the
rest from requirements/base.txt (without its numpy and setuptools pins) and ml.txt; ros.txt, the
PyPI stand-in for ROS, is skipped there. A module only ros.txt provides would import on the
development machines and fail on the robot.
"""

import ast
from pathlib import Path
import re
import sys

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / 'src'
# top-level module -> the PyPI distribution that provides it
DISTRIBUTION = {
    'PIL': 'pillow', 'cmaes': 'cmaes', 'dynamixel_sdk': 'dynamixel-sdk',
    'matplotlib': 'matplotlib', 'mobile_sam': 'mobilesam-mirror', 'mujoco': 'mujoco',
    'numpy': 'numpy',
    'open_clip': 'open_clip_torch', 'qtpy': 'QtPy', 'rosbags': 'rosbags',
    'safetensors': 'safetensors', 'scipy': 'scipy', 'segment_anything': 'segment_anything',
    'serial': 'pyserial', 'torch': 'torch', 'torchvision': 'torchvision', 'tqdm': 'tqdm',
    'yaml': 'PyYAML',
}
# what the ROS 2 distribution (apt, rosdep from package.xml) provides on the robot
FROM_ROS = {'action_msgs', 'ament_index_python', 'geometry_msgs', 'launch', 'launch_ros',
            'moveit', 'moveit_configs_utils', 'rcl_interfaces', 'rclpy', 'rqt_gui_py',
            'sensor_msgs', 'std_msgs', 'std_srvs', 'builtin_interfaces', 'trajectory_msgs',
            'unique_identifier_msgs', 'rosgraph_msgs'}
# installed by a pinned distribution as its own dependency (torchvision needs Pillow)
TRANSITIVE = {'pillow': 'torchvision'}


def imported_modules():
    found = set()
    for path in SRC.glob('deft_*/deft_*/**/*.py'):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split('.')[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split('.')[0])
    return {m for m in found if m not in sys.stdlib_module_names and not m.startswith('deft_')}


def pinned(*files):
    names = set()
    for name in files:
        for line in (ROOT / 'requirements' / name).read_text().splitlines():
            match = re.match(r'^([A-Za-z0-9_.-]+)==', line.strip())
            if match:
                names.add(match.group(1).lower().replace('_', '-'))
    return names


def test_every_import_is_known():
    unknown = imported_modules() - set(DISTRIBUTION) - FROM_ROS
    assert not unknown, f'add these modules to DISTRIBUTION or FROM_ROS: {sorted(unknown)}'


def test_the_robot_install_provides_every_imported_module():
    robot = pinned('base.txt', 'ml.txt') - {'numpy', 'setuptools'}  # numpy: the ROS one
    missing = []
    for module in sorted(imported_modules() - FROM_ROS):
        dist = DISTRIBUTION[module].lower().replace('_', '-')
        if dist == 'numpy' or dist in robot or TRANSITIVE.get(dist, '').lower() in robot:
            continue
        missing.append(f'{module} ({DISTRIBUTION[module]})')
    assert not missing, f'not installed on the robot (only in ros.txt or nowhere): {missing}'


def test_ros_txt_holds_only_the_ros_stand_in():
    others = {n for n in pinned('ros.txt') if not n.startswith('ros-')} - {'catkin-pkg'}
    assert not others, f'ros.txt is skipped on the robot; move these to base.txt: {others}'
