"""The runner finds the installed packages without make or an activated environment."""

import os
import subprocess
import sys

from deft_bringup.runner import ensure_ament_prefix, no_install_message


def test_the_venv_is_its_own_ament_prefix_when_none_is_set(monkeypatch):
    monkeypatch.delenv('AMENT_PREFIX_PATH', raising=False)
    ensure_ament_prefix()
    assert os.environ['AMENT_PREFIX_PATH'] == sys.prefix


def test_a_prefix_already_set_is_kept(monkeypatch):
    monkeypatch.setenv('AMENT_PREFIX_PATH', '/opt/ros/kilted')
    ensure_ament_prefix()
    assert os.environ['AMENT_PREFIX_PATH'] == '/opt/ros/kilted'


def test_deft_run_from_a_bare_environment_finds_the_graph(tmp_path):
    """`.venv/bin/deft_run --help`-like lookup with no ROS variables at all."""
    code = ('from deft_bringup.runner import ensure_ament_prefix; ensure_ament_prefix(); '
            'from ament_index_python.packages import get_package_share_directory as share; '
            "print(share('deft_bringup'))")
    out = subprocess.run([sys.executable, '-c', code], env={'PATH': '/usr/bin:/bin',
                         'HOME': str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == os.path.join(sys.prefix, 'share', 'deft_bringup')


def test_the_missing_install_message_says_what_to_do():
    text = no_install_message('deft_run', OSError('AMENT_PREFIX_PATH is not set'))
    assert text.startswith('deft_run: cannot find the installed DEFT packages')
    assert 'make setup' in text and 'install/setup.bash' in text
