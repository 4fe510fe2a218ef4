"""
docker/: the Dockerfile lints clean, installs what the set-up installs, and compose passes devices.

The Dockerfile is linted by hadolint when its binary is on PATH (with docker/.hadolint.yaml) and by
deft_bringup.dockerlint, hadolint's rules that matter here in plain Python, in every case. No image
is built: there is no Docker engine on the development machines.
"""

import json
import os
from pathlib import Path
import re
import shutil
import subprocess

import pytest
import yaml

from deft_bringup import dockerlint

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / 'docker'
DOCKERFILE = DOCKER / 'Dockerfile'
COMPOSE = DOCKER / 'compose.yaml'
HADOLINT_CONFIG = DOCKER / '.hadolint.yaml'
HADOLINT = shutil.which('hadolint')


def instructions(keyword=None):
    found, _ = dockerlint.parse(DOCKERFILE.read_text())
    return [i for i in found if keyword is None or i.keyword == keyword]


def dockerfile_args():
    """ARG names of the Dockerfile, with their defaults (None: no default)."""
    args = {}
    for ins in instructions('ARG'):
        name, sep, value = ins.args.partition('=')
        args.setdefault(name, value.strip('"') if sep else None)
    return args


def compose():
    return yaml.safe_load(COMPOSE.read_text())


def hadolint_codes(text):
    """Codes hadolint reports for a Dockerfile text (read from standard input)."""
    done = subprocess.run([HADOLINT, '--no-fail', '--format', 'json', '-'], input=text,
                          capture_output=True, text=True, timeout=60, check=True)
    return {f['code'] for f in json.loads(done.stdout or '[]')}


# ---- the linter's rules: each catches a bad snippet and passes its fixed form.
# (code, bad, good, hadolint reports the same): hadolint runs on the snippets where it agrees.
CASES = [
    ('DL3003', 'FROM ubuntu:24.04\nRUN cd /src && make\n',
     'FROM ubuntu:24.04\nWORKDIR /src\nRUN make\n', True),
    ('DL3006', 'FROM ubuntu\nCMD ["true"]\n',
     'FROM ubuntu:24.04 AS base\nFROM base\nCMD ["true"]\n', True),
    ('DL3006', 'FROM ros:jazzy-ros-base-noble\nFROM ubuntu\n',
     'FROM ubuntu@sha256:' + 'a' * 64 + '\nFROM scratch\n', True),
    ('DL3007', 'FROM ubuntu:latest\n', 'FROM ubuntu:24.04\n', True),
    ('DL3007', 'ARG TAG=latest\nFROM ubuntu:${TAG}\n', 'ARG TAG=24.04\nFROM ubuntu:${TAG}\n',
     False),
    ('DL3009', 'FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y '
     '--no-install-recommends curl\n',
     'FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y --no-install-recommends curl '
     '\\\n    && rm -rf /var/lib/apt/lists/*\n', True),
    ('DL3009', 'FROM ubuntu:24.04 AS base\nRUN apt-get update\nFROM base\nCMD ["true"]\n',
     'FROM ubuntu:24.04 AS unused\nRUN apt-get update\nFROM ubuntu:24.04\nCMD ["true"]\n',
     True),
    ('DL3015', 'FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y curl '
     '&& rm -rf /var/lib/apt/lists/*\n',
     'FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y --no-install-recommends curl '
     '&& rm -rf /var/lib/apt/lists/*\n', True),
    ('DL3020', 'FROM ubuntu:24.04\nADD requirements/ /deft/requirements/\n',
     'FROM ubuntu:24.04\nCOPY requirements/ /deft/requirements/\n'
     'ADD rootfs.tar.xz /\nADD https://example.com/a.tar.gz /tmp/\n', True),
    ('DL3025', 'FROM ubuntu:24.04\nENTRYPOINT /entrypoint.sh\n',
     'FROM ubuntu:24.04\nENTRYPOINT ["/entrypoint.sh"]\n', True),
    ('DL3025', 'FROM ubuntu:24.04\nCMD ros2 launch deft_bringup sim.launch.py\n',
     'FROM ubuntu:24.04\nCMD ["ros2", "launch", "deft_bringup", "sim.launch.py"]\n', True),
    ('DL3042', 'FROM python:3.12\nRUN pip install -r requirements.txt\n',
     'FROM python:3.12\nRUN pip install --no-cache-dir -r requirements.txt\n', True),
    ('DL3042', 'FROM python:3.12\nRUN python3 -m pip install torch==2.14.1\n',
     'FROM python:3.12 AS base\nENV PIP_NO_CACHE_DIR=1\nFROM base\n'
     'RUN python3 -m pip install torch==2.14.1\n', True),
    ('DL3042', 'FROM python:3.12\nRUN ["pip", "install", "cmaes==0.13.1"]\n',
     'FROM python:3.12\nRUN ["pip", "install", "--no-cache-dir", "cmaes==0.13.1"]\n', True),
    ('DL4006', 'FROM ubuntu:24.04\nRUN grep -v numpy base.txt | tee /tmp/base.txt\n',
     'FROM ubuntu:24.04\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\n'
     'RUN grep -v numpy base.txt | tee /tmp/base.txt\n', True),
    ('DL4006', 'FROM ubuntu:24.04 AS a\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\n'
     'FROM a\nRUN grep -v numpy base.txt | tee /tmp/base.txt\n',
     'FROM ubuntu:24.04\nRUN grep -v numpy base.txt || true\n', True),
]
IDS = [f'{code}-{n}' for n, (code, *_) in enumerate(CASES)]


@pytest.mark.parametrize('code,bad,good,_agrees', CASES, ids=IDS)
def test_rule_catches_bad_snippet(code, bad, good, _agrees):
    assert code in {f.code for f in dockerlint.lint(bad)}, bad
    assert code not in {f.code for f in dockerlint.lint(good)}, good


@pytest.mark.skipif(HADOLINT is None, reason='hadolint is not on PATH')
@pytest.mark.parametrize('code,bad,good,agrees', CASES, ids=IDS)
def test_hadolint_agrees_on_snippet(code, bad, good, agrees):
    if not agrees:  # the documented difference: hadolint passes it, dockerlint does not
        assert code not in hadolint_codes(bad)
        return
    assert code in hadolint_codes(bad)
    assert code not in hadolint_codes(good)


def test_every_rule_has_a_case():
    assert set(dockerlint.RULES) == {code for code, *_ in CASES}


def test_ignore_comments_and_options():
    bad = 'FROM ubuntu:24.04\n# hadolint ignore=DL3003\nRUN cd /src && make\nRUN cd /tmp\n'
    assert [(f.line, f.code) for f in dockerlint.lint(bad)] == [(4, 'DL3003')]
    assert dockerlint.lint('# hadolint global ignore=DL3003\n' + bad) == []
    assert dockerlint.lint(bad, ignore=['DL3003']) == []


def test_parse_joins_continuations_and_skips_comments():
    found, _ = dockerlint.parse('FROM a:1\nRUN one \\\n  # a comment\n\n  && two\nCMD ["x"]\n')
    assert [(i.keyword, i.args, i.line) for i in found] == [
        ('FROM', 'a:1', 1), ('RUN', 'one && two', 2), ('CMD', '["x"]', 6)]


def test_commands_split_on_shell_operators():
    script = ('A=1 sudo apt-get update && if x; then cd /y; fi || echo "a | b" '
              '| tee f; python3 -m pip install x')
    names = [c[0] for c in dockerlint.commands(script)]
    assert names == ['apt-get', 'x', 'cd', 'echo', 'tee', 'python3']


def test_command_line_interface(tmp_path, capsys):
    bad = tmp_path / 'Dockerfile'
    bad.write_text('FROM ubuntu:latest\nCMD bash\n')
    assert dockerlint.main([str(bad)]) == 1
    assert 'DL3007' in capsys.readouterr().out
    assert dockerlint.main(['--ignore', 'DL3007', '--ignore', 'DL3025', str(bad)]) == 0


# ---- docker/Dockerfile itself.
def test_dockerfile_passes_dockerlint():
    assert [str(f) for f in dockerlint.lint_file(str(DOCKERFILE))] == []


def test_dockerfile_passes_hadolint_or_its_stand_in():
    """Lint with hadolint and docker/.hadolint.yaml if installed, else with dockerlint."""
    if HADOLINT is None:
        ignored = yaml.safe_load(HADOLINT_CONFIG.read_text()).get('ignored', [])
        assert dockerlint.lint_file(str(DOCKERFILE), ignored) == []
        return
    done = subprocess.run([HADOLINT, '--no-color', '--config', str(HADOLINT_CONFIG),
                           str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_base_image_is_the_official_ros_image_pinned_by_distro():
    args = dockerfile_args()
    assert args['ROS_DISTRO'] in ('jazzy', 'kilted')
    froms = [i.args.split()[0] for i in instructions('FROM')]
    assert froms[0] == 'ros:${ROS_DISTRO}-ros-base-${UBUNTU}'
    assert 'latest' not in DOCKERFILE.read_text()


def test_dockerfile_installs_moveit_and_has_both_variants():
    text = DOCKERFILE.read_text()
    assert '"ros-${ROS_DISTRO}-moveit"' in text and '"ros-${ROS_DISTRO}-moveit-py"' in text
    assert dockerfile_args()['VARIANT'] == 'cpu'
    assert re.search(r'^\s*cpu\) index=\$\{TORCH_INDEX:-https://download\.pytorch\.org/whl/cpu\}',
                     text, re.M)
    assert re.search(r'^\s*cuda\) index=', text, re.M)


def setup_requirement_files():
    """Return the requirement files tools/setup.sh installs."""
    match = re.search(r'^req_files=\(([^)]*)\)', (ROOT / 'tools' / 'setup.sh').read_text(), re.M)
    assert match, 'tools/setup.sh no longer lists req_files=(...)'
    return set(match.group(1).split())


def dockerfile_requirement_files():
    runs = ' '.join(i.args for i in instructions('RUN'))
    return set(re.findall(r'requirements/[\w.-]+\.txt', runs))


def test_dockerfile_installs_the_setup_requirement_files():
    installed = dockerfile_requirement_files()
    assert installed, 'no requirements/*.txt found in the RUN instructions'
    for name in installed:
        assert (ROOT / name).is_file(), name
    # ros.txt is the PyPI stand-in for ROS 2, which the image has from apt.
    assert installed == setup_requirement_files() - {'requirements/ros.txt'}
    copies = [i.args for i in instructions('COPY')]
    assert 'requirements/ requirements/' in copies


def test_requirement_lines_the_dockerfile_filters_exist():
    """The Dockerfile greps torch/torchvision out of ml.txt and numpy out of base.txt."""
    ml = (ROOT / 'requirements' / 'ml.txt').read_text().splitlines()
    assert sum(bool(re.fullmatch(r'torch==\S+', line)) for line in ml) == 1
    assert sum(bool(re.fullmatch(r'torchvision==\S+', line)) for line in ml) == 1
    base = (ROOT / 'requirements' / 'base.txt').read_text().splitlines()
    assert sum(line.startswith('numpy==') for line in base) == 1


def test_entrypoint_is_executable_bash():
    entrypoint = DOCKER / 'entrypoint.sh'
    assert os.access(entrypoint, os.X_OK)
    subprocess.run(['bash', '-n', str(entrypoint)], check=True, timeout=30)
    assert 'COPY docker/entrypoint.sh /entrypoint.sh' in [
        f'COPY {i.args}' for i in instructions('COPY')]


def test_runs_as_a_non_root_user():
    users = instructions('USER')
    assert users and users[-1].args not in ('root', '0', '0:0')


def test_dockerignore_keeps_the_context_small():
    patterns = [p for p in (ROOT / '.dockerignore').read_text().splitlines()
                if p and not p.startswith('#')]
    for name in ('.git', '.venv', 'build', '.ros', 'runs', 'results'):
        assert name in patterns
    # What the Dockerfile copies stays in the context.
    for pattern in patterns:
        assert not pattern.startswith('!')
        assert pattern.split('/')[0] not in ('src', 'requirements', 'docker') \
            or pattern == 'src/*/build', pattern


# ---- docker/compose.yaml.
def test_compose_parses_and_builds_this_dockerfile():
    services = compose()['services']
    assert {'sim', 'sim-cuda', 'robot', 'robot-cuda', 'camera'} <= set(services)
    declared = set(dockerfile_args())
    for name, service in services.items():
        build = service['build']
        assert (DOCKER / build['context'] / build['dockerfile']).resolve() == DOCKERFILE
        assert set(build['args']) <= declared, name
        variant = build['args']['VARIANT']
        assert variant in ('cpu', 'cuda')
        assert service['image'].endswith(f'-{variant}') and 'latest' not in service['image']
        assert service['network_mode'] == 'host', name   # DDS
        assert service['ipc'] == 'host', name            # Fast DDS shared memory
        assert not service.get('privileged'), name


def test_compose_passes_the_hands_serial_port_through():
    hand = yaml.safe_load((ROOT / 'src' / 'deft_bringup' / 'config' / 'hand_driver.yaml')
                          .read_text())
    port = hand['/**/hand_driver']['ros__parameters']['port']
    for name in ('robot', 'robot-cuda'):
        service = compose()['services'][name]
        host, container = service['devices'][0].rsplit(':', 1)
        assert host.startswith('${DEFT_HAND_DEVICE:-/dev/')
        assert container == port                    # the driver's default port works inside
        assert 'robot.launch.py' in service['command']


def test_compose_passes_the_camera_through_without_privileges():
    camera = compose()['services']['camera']
    assert '/dev/bus/usb:/dev/bus/usb' in camera['volumes']
    assert 'c 189:* rmw' in camera['device_cgroup_rules']   # USB, across re-enumeration
    assert 'c 81:* rmw' in camera['device_cgroup_rules']    # video4linux
    assert 'realsense2_camera' in camera['command']
    assert 'realsense2-camera' in dockerfile_args()['EXTRA_ROS_PACKAGES'].split()
    assert set(camera['profiles']) == {'robot', 'robot-cuda'}


def test_compose_cuda_services_reserve_the_gpu():
    services = compose()['services']
    for name in ('sim-cuda', 'robot-cuda'):
        service = services[name]
        assert service['build']['args']['VARIANT'] == 'cuda'
        devices = service['deploy']['resources']['reservations']['devices']
        assert any('gpu' in d['capabilities'] and d['driver'] == 'nvidia' for d in devices)
    for name in ('sim', 'robot', 'camera'):
        assert 'deploy' not in services[name]


def test_compose_keeps_runs_and_checkpoints_on_the_host():
    env = {}
    for ins in instructions('ENV'):
        env.update(dockerlint.env_pairs(ins.args))
    runs = env['ROS_HOME'] + '/deft/runs'   # where the episode node writes runs by default
    for name in ('sim', 'sim-cuda', 'robot', 'robot-cuda'):
        volumes = compose()['services'][name]['volumes']
        targets = [re.sub(r'\$\{[^}]*\}', 'host', v).split(':')[1] for v in volumes]
        assert runs in targets and '/data/checkpoints' in targets, name
