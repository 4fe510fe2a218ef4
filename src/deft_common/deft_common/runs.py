"""
Run directories of fine-tuning: nothing finished is ever lost, nothing is duplicated.

    <run_root>/<run_id>/
        run.json               settings (task, N, M, E, optimizer, seed, parameter names, ...)
        episodes/000007.json   one file per finished episode (xi, eps, reward, ..., and the
                               optimiser state after it), atomic
        report.png, summary.txt

A file appears under its final name only once complete (write to a temporary file, fsync, rename,
fsync the directory), so a process killed at any moment leaves either the whole episode or none of
it. Episodes are numbered from 0 without gaps; a run resumes at the first missing index, from the
optimiser state stored in the last finished episode (runs written before states were stored
carry none: they resume by replaying the recorded eps and rewards).
"""

from dataclasses import asdict, dataclass, field
import json
import math
import os
from pathlib import Path
import re
import tempfile
import time
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from deft_common.user_text import shown

RUN_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$')


@dataclass
class RunSettings:
    """What fixes a run: resuming with other settings would make a different run."""

    task: str
    object_prompt: str
    episodes: int
    warmup_episodes: int
    elites: int
    initial_std: List[float]
    reward_source: str
    optimizer: str
    prior: str
    seed: int
    parameter_names: List[str]
    created: float = field(default_factory=time.time)

    def conflicts(self, other: 'RunSettings') -> List[str]:
        """Return the names of the settings that differ from another run's (not `created`)."""
        mine, theirs = asdict(self), asdict(other)
        return [k for k in mine if k != 'created' and mine[k] != theirs[k]]


@dataclass
class EpisodeEntry:
    """One finished episode of a run."""

    episode: int
    xi: List[float]
    eps: List[float]
    reward: float
    reward_source: str
    stamp: float
    bag_path: str = ''
    message: str = ''
    # optimizers.ResidualOptimizer.state_dict() after this episode was told (None: older runs)
    optimizer_state: Optional[Dict[str, Any]] = None
    # the reward source's own verdict on the task (sim: the twin's success check); None when it
    # has none (operator, embedding) or the run is older
    task_success: Optional[bool] = None


def check_run_id(run_id: str) -> str:
    """Return the run id or raise ValueError saying what a run id may contain."""
    if not RUN_ID.match(run_id or ''):
        raise ValueError(f'run_id {shown(run_id)} is not valid: use 1-128 letters, digits, ".", '
                         '"_" or "-", starting with a letter or digit')
    return run_id


def new_run_id() -> str:
    """Return a fresh timestamped run id."""
    return time.strftime('%Y%m%d-%H%M%S') + f'-{os.getpid() % 10000:04d}'


def process_umask() -> int:
    """Return the process's umask (read from /proc on Linux; set and restored elsewhere)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # not thread-safe: only where /proc is missing
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: Union[str, Callable[[IO[bytes]], None]]) -> Path:
    """
    Write to path so that it either fully exists under its name or not at all; return path.

    `data` is text, or a function that writes the bytes into the binary file it is given
    (PNG, torch checkpoints). The file and its directory entry are synced before returning.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name, suffix='.tmp')
    try:
        os.fchmod(fd, 0o666 & ~process_umask())  # as open() would: mkstemp makes it 0600
        with os.fdopen(fd, 'wb') as f:
            if isinstance(data, str):
                f.write(data.encode())
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


class RunStore:
    """Reads and appends the run directory of one run."""

    def __init__(self, root: Path, run_id: str):
        self.run_id = check_run_id(run_id)
        self.dir = Path(root) / run_id
        self.episodes_dir = self.dir / 'episodes'

    @property
    def exists(self) -> bool:
        """Return whether the run was created."""
        return (self.dir / 'run.json').is_file()

    def create(self, settings: RunSettings) -> None:
        """Create the run; FileExistsError if it exists."""
        if self.exists:
            raise FileExistsError(f'run {self.run_id!r} already exists in {self.dir}')
        self.episodes_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / 'run.json', json.dumps(asdict(settings), indent=2))

    def settings(self) -> RunSettings:
        """Load the run's settings; FileNotFoundError / ValueError with the path."""
        path = self.dir / 'run.json'
        if not path.is_file():
            raise FileNotFoundError(f'run {self.run_id!r} not found (no {path})')
        try:
            return RunSettings(**json.loads(path.read_text()))
        except (TypeError, ValueError) as exc:
            raise ValueError(f'{path} is not a run description: {exc}') from exc

    def episodes(self) -> List[EpisodeEntry]:
        """Load the finished episodes in order; ValueError on a gap or a malformed file."""
        entries: Dict[int, EpisodeEntry] = {}
        if self.episodes_dir.is_dir():
            for path in sorted(self.episodes_dir.glob('[0-9]*.json')):
                try:
                    entry = EpisodeEntry(**json.loads(path.read_text()))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f'{path} is not an episode record: {exc}') from exc
                entries[entry.episode] = entry
        if sorted(entries) != list(range(len(entries))):
            raise ValueError(f'run {self.run_id!r} has gaps in its episodes: {sorted(entries)}')
        return [entries[k] for k in range(len(entries))]

    def append(self, entry: EpisodeEntry) -> Path:
        """Record a finished episode; it must be the next index (no loss, no duplicate)."""
        expected = len(self.episodes())
        if entry.episode != expected:
            raise ValueError(f'episode {entry.episode} cannot follow {expected} finished episodes '
                             f'of run {self.run_id!r}')
        if not math.isfinite(entry.reward):
            raise ValueError(f'episode {entry.episode}: reward {entry.reward} is not finite')
        path = self.episodes_dir / f'{entry.episode:06d}.json'
        atomic_write(path, json.dumps(asdict(entry)))
        return path


def history(entries: Sequence[EpisodeEntry]) -> List[tuple]:
    """Return [(eps, reward), ...] of the entries, for optimizers.replay()."""
    return [(e.eps, e.reward) for e in entries]


def find_run(root: Path, run_id: str) -> Optional[RunStore]:
    """Return the store of an existing run, or None."""
    store = RunStore(root, run_id)
    return store if store.exists else None


# --- side files of an episode (never *.json, so episodes() does not read them) -------------
def image_path(run_dir: Path, episode: int) -> Path:
    """Return where the initial image I0 of an episode is stored."""
    return Path(run_dir) / 'episodes' / f'{int(episode):06d}.I0.png'


def features_path(run_dir: Path, episode: int) -> Path:
    """Return where a precomputed feature vector phi(I0) of an episode is stored."""
    return Path(run_dir) / 'episodes' / f'{int(episode):06d}.phi.npy'


def save_initial_image(run_dir: Path, episode: int, rgb: np.ndarray) -> Path:
    """Write an episode's initial image (H x W x 3, uint8 RGB) as its I0 PNG, atomically."""
    from PIL import Image

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'I0 must be an H x W x 3 uint8 RGB image, got {rgb.dtype} {rgb.shape}')
    # zlib level 1: about 3 times faster than PIL's default 6 for ~20 % more bytes; it is written
    # between two episodes, while the robot waits
    return atomic_write(image_path(run_dir, episode), lambda f: Image.fromarray(rgb, 'RGB').save(
        f, format='PNG', compress_level=1))


def save_features(run_dir: Path, episode: int, features: Sequence[float]) -> Path:
    """Write an episode's precomputed feature vector phi(I0) (1-D, finite), atomically."""
    v = np.asarray(features, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f'features must be a non-empty finite 1-D vector, got shape {v.shape}')
    return atomic_write(features_path(run_dir, episode),
                         lambda f: np.save(f, v, allow_pickle=False))


def load_image(path: Path) -> np.ndarray:
    """Read a PNG/JPEG as an H x W x 3 uint8 RGB array; ValueError if it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert('RGB'), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f'{path} is not a readable image: {exc}') from exc


def load_feature_file(path: Path) -> np.ndarray:
    """Read a `.phi.npy` feature vector (no pickles); ValueError unless finite, 1-D, numeric."""
    try:
        v = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ValueError(f'{path} is not a feature vector (.npy): {exc}') from exc
    if v.ndim != 1 or v.size == 0 or not np.issubdtype(v.dtype, np.number) \
            or not np.all(np.isfinite(v)):
        raise ValueError(f'{path} must hold a non-empty finite 1-D numeric vector, '
                         f'got {v.dtype} {v.shape}')
    return v.astype(np.float64)
