"""
What the episode node keeps of the episode under way, and how a finished episode is stored.

`EpisodeCapture` holds, for one episode, its initial image I0, the camera frames (initial,
final) and the hand joint states its bag keeps, the grasp prior message, and xi, eps, reward as
they become known; it builds the fields of the EpisodeRecord of a finished episode and of what
waits for the operator (reward_request, reset_request). `store_episode_media` writes a finished
run episode's I0 and bag, replacing those a crash or a discard left for the same index, before
FineTuneRun.record appends the episode itself atomically. No rclpy here.
"""

import math
from pathlib import Path
import shutil
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from deft_common.runs import RunSettings, save_initial_image
from deft_replay.bag_format import Frame
from deft_replay.bag_writer import EpisodeBagWriter, episode_bag_path

# The record published when nothing waits for the operator any more (a terminal started later
# is not shown a finished wait).
NOTHING_WAITS: Dict[str, Any] = {'episode': -1, 'reward': math.nan, 'reward_source': ''}


class JointDecimator:
    """
    Keeps hand joint states of the episode under way, at most `rate_hz` (for its bag).

    Thread-safe: the node offers states from a side lane while its executor starts and stops.
    """

    def __init__(self, rate_hz: float):
        if not rate_hz > 0:
            raise ValueError(f'bag_joint_rate_hz must be > 0, got {rate_hz}')
        self.period = 1.0 / rate_hz
        self.kept: List = []
        self.active = False
        self._last = -math.inf
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start a new episode: forget the last one's states."""
        with self._lock:
            self.kept, self.active, self._last = [], True, -math.inf

    def stop(self) -> None:
        """Stop keeping (the motion is over): no state is added after this returns."""
        with self._lock:
            self.active = False

    def offer(self, msg) -> bool:
        """Keep `msg` when active and at least one period after the last kept; return kept."""
        t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            if not self.active or t - self._last < self.period:
                return False
            self._last = t
            self.kept.append(msg)
            return True


def grab_frame(camera, camera_info, depth) -> Optional[Frame]:
    """Return the newest colour frame with its camera info and depth (None: no colour frame)."""
    colour = camera.msg()
    return None if colour is None else Frame(colour, camera_info.msg(), depth.msg())


def record_fields(run_id: str, episode: int, task: str, xi: Sequence[float],
                  eps: Sequence[float], parameter_names: Sequence[str], reward: float,
                  source: str) -> Dict[str, Any]:
    """Return the fields of an EpisodeRecord (all but its stamp), numbers as plain floats."""
    return {'run_id': run_id, 'episode': int(episode), 'task': task,
            'xi': [float(v) for v in xi], 'eps': [float(v) for v in eps],
            'parameter_names': list(parameter_names), 'reward': float(reward),
            'reward_source': source}


class EpisodeCapture:
    """What the episode under way has produced so far (for its record, bag and announcements)."""

    def __init__(self, parameter_names: Sequence[str], joint_rate_hz: float):
        self.names = list(parameter_names)
        self.joints = JointDecimator(joint_rate_hz)
        self.initial_image = None  # I0 (H x W x 3 RGB) for the policy and the run directory
        self.frames: Dict[str, Optional[Frame]] = {}  # 'initial' / 'final'
        self.prior = None  # the GraspPrior message
        self.current: Dict[str, Any] = {}  # xi, eps, then reward and source

    def start(self) -> None:
        """Begin an episode: forget the last one's image, frames, prior, values; keep joints."""
        self.joints.start()
        self.initial_image, self.frames, self.prior, self.current = None, {}, None, {}

    def perceived(self, initial_image, frame: Optional[Frame]) -> None:
        """Keep I0 and the initial frame (after perception)."""
        self.initial_image, self.frames['initial'] = initial_image, frame

    def residual(self, xi: Sequence[float], eps: Sequence[float]) -> None:
        """Keep the xi and eps the episode executes."""
        self.current = {'xi': [float(v) for v in xi], 'eps': [float(v) for v in eps]}

    def scored(self, reward: float, source: str, final: Optional[Frame]) -> None:
        """Keep the reward and the final frame; the motion is over (no more joint states)."""
        self.current.update(reward=float(reward), source=source)
        self.frames['final'] = final
        self.joints.stop()

    def record(self, run_id: str, episode: int, task: str, xi, eps, reward: float,
               source: str) -> Dict[str, Any]:
        """Return the EpisodeRecord fields of a finished episode (but its stamp)."""
        return record_fields(run_id, episode, task, xi, eps, self.names, reward, source)

    def _waiting(self, run_id: Optional[str], episode: int, task: str, reward: float,
                 source: str) -> Dict[str, Any]:
        if run_id is None:
            return dict(NOTHING_WAITS)
        return record_fields(run_id, episode, task, self.current.get('xi', []),
                             self.current.get('eps', []), self.names, reward, source)

    def reward_request(self, run_id: Optional[str], episode: int, task: str) -> Dict[str, Any]:
        """Return the fields announcing the episode waiting for its score (run_id None: none)."""
        return self._waiting(run_id, episode, task, math.nan, 'operator')

    def reset_request(self, run_id: Optional[str], episode: int, task: str) -> Dict[str, Any]:
        """Return the fields announcing the episode waiting for the scene reset (None: none)."""
        return self._waiting(run_id, episode, task, self.current.get('reward', math.nan),
                             self.current.get('source', ''))


def bag_metadata(settings: RunSettings) -> Dict[str, Any]:
    """Return the metadata an episode bag of a fine-tuning run carries."""
    return {'task': settings.task, 'object_prompt': settings.object_prompt,
            'seed': settings.seed, 'optimizer': settings.optimizer, 'prior': settings.prior,
            'mode': 'fine_tune'}


def store_episode_media(run_dir: Path, episode: int, capture: EpisodeCapture, record,
                        metadata: Mapping[str, Any], bags: Optional[EpisodeBagWriter],
                        save_image: bool, warn: Callable[[str], None]) -> str:
    """
    Write a finished run episode's I0 (save_image) and bag (bags); return the bag path or ''.

    `record` is the EpisodeRecord (message) written into the bag; its bag_path is set to the
    bag's path, or '' when no bag was written. A bag already at the path (an episode run again
    after a crash or a discard) is replaced: the new run of the episode counts. Failures are
    passed to `warn` and leave the episode without that file: the record still counts.
    """
    if save_image and capture.initial_image is not None:
        try:
            save_initial_image(run_dir, episode, capture.initial_image)
        except (OSError, ValueError) as exc:
            warn(f'could not store I0 of episode {episode}: {exc}')
    record.bag_path = ''
    if bags is None or capture.frames.get('initial') is None:
        return ''
    path = episode_bag_path(run_dir, episode)
    record.bag_path = str(path)
    try:
        if path.exists():
            shutil.rmtree(path)
        bags.write(path, initial=capture.frames['initial'], final=capture.frames.get('final'),
                   joint_states=capture.joints.kept, prior=capture.prior, record=record,
                   metadata=dict(metadata))
    except (OSError, ValueError) as exc:
        warn(f'could not write the bag of episode {episode}: {exc}')
        record.bag_path = ''
        return ''
    return str(path)
