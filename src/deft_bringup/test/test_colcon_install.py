"""
The workspace builds with colcon as on the robot, and what the robot runs is where ROS looks.

colcon (colcon-core + colcon-ros from PyPI, requirements/dev.txt) builds every Python package of
src/ into a temporary install, in its default isolated layout. deft_interfaces, the CMake
interface package, is taken from the environment (tools/setup.sh built it into the venv) and
ignored here: building it again would take most of this test's time and prove nothing new.
Checked: `lib/<package>/<executable>` of every console script and of every node of the three
profiles' graphs (what `ros2 run` and the launch files start), the launch and config files under
share/, the ament index markers, and that the nodes import from the install and answer --help.
"""

import configparser
import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

from deft_bringup.graph import NODES, PROFILES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / 'src'
PACKAGES = sorted(p.parent.name for p in SRC.glob('*/setup.py'))


def console_scripts(package: str):
    """Return the console script names of a package's setup.py (its entry_points)."""
    text = (SRC / package / 'setup.py').read_text()
    start = text.index("'console_scripts'")
    block = text[start:text.index(']', start)]
    return sorted(line.split('=')[0].strip().strip("'\"")
                  for line in block.splitlines()[1:] if '=' in line)


@pytest.fixture(scope='module')
def install(tmp_path_factory):
    colcon = shutil.which('colcon')
    assert colcon, 'colcon is not installed: make setup installs requirements/dev.txt'
    base = tmp_path_factory.mktemp('colcon')
    proc = subprocess.run(
        [colcon, '--log-base', str(base / 'log'), 'build', '--base-paths', str(SRC),
         '--packages-ignore', 'deft_interfaces', '--build-base', str(base / 'build'),
         '--install-base', str(base / 'install')],
        cwd=base, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return base / 'install'


def test_every_python_package_is_built_with_its_index_marker(install):
    assert len(PACKAGES) >= 11 and 'deft_interfaces' not in PACKAGES
    for package in PACKAGES:
        assert (install / package / 'share' / 'ament_index' / 'resource_index' / 'packages'
                / package).is_file(), package
        assert (install / package / 'share' / package / 'package.xml').is_file(), package


def test_every_console_script_and_graph_node_is_in_lib_package(install):
    for package in PACKAGES:
        cfg = configparser.ConfigParser()
        cfg.read(SRC / package / 'setup.cfg')
        assert cfg.get('install', 'install_scripts', fallback='') == f'$base/lib/{package}', \
            f'{package}/setup.cfg: colcon layout'
        for script in console_scripts(package):
            path = install / package / 'lib' / package / script
            assert path.is_file() and os.access(path, os.X_OK), path
    for profile in PROFILES:
        for node in NODES:
            if profile in node.profiles:
                path = install / node.package / 'lib' / node.package / node.executable
                assert path.is_file(), f'{profile}: {node.name} -> {path}'


def test_launch_and_config_files_are_installed(install):
    share = install / 'deft_bringup' / 'share' / 'deft_bringup'
    for folder in ('launch', 'config'):
        want = sorted(p.name for p in (SRC / 'deft_bringup' / folder).iterdir())
        assert sorted(p.name for p in (share / folder).iterdir()) == want, folder
    assert (install / 'deft_cem' / 'share' / 'deft_cem' / 'config' /
            'demonstrations.yaml').is_file()


def test_the_nodes_import_from_the_install_and_answer_help(install):
    env = dict(os.environ)
    paths = [str(next((install / p / 'lib').glob('python3*/site-packages'))) for p in PACKAGES]
    env['PYTHONPATH'] = os.pathsep.join(paths + [env.get('PYTHONPATH', '')])
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(
        [str(install / p) for p in PACKAGES] + [env.get('AMENT_PREFIX_PATH', '')])
    where = subprocess.run([sys.executable, '-c', 'import deft_replay.bag_player as m; '
                            'print(m.__file__)'], env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(install)), where.stdout + where.stderr
    for node in {(n.package, n.executable) for n in NODES}:
        path = install / node[0] / 'lib' / node[0] / node[1]
        proc = subprocess.run([str(path), '--help'], env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith('usage: '), \
            f'{path}: {proc.stdout[-500:]}{proc.stderr[-2000:]}'
