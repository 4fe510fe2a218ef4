"""
Episodes see the scene as it is when they begin, never a frame buffered before.

The test is the camera: it publishes RGB-D frames with stamps it chooses. Perception segments
only frames stamped at or after a request's `not_before` (colour and depth both: a new colour
frame is not paired with an old depth frame); a fine-tuning episode perceives, and stores as
I0, the first frame of the scene after it began, not the one shown before.
"""

from pathlib import Path
import threading
import time

from action_msgs.msg import GoalStatus
import numpy as np
import pytest
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from deft_bringup.client import EpisodeClient
from deft_bringup.testing import FAST_SIM, WALL_CLOCK, Probe, start_graph, wait_until
from deft_common import image_codec
from deft_common.runs import RunStore, load_image
from deft_interfaces.action import FineTune
from deft_interfaces.srv import PredictGrasp, Segment, SubmitReward
from deft_replay.bag_reader import read_episode_bag
from deft_replay.bag_writer import episode_bag_path

pytestmark = pytest.mark.integration
LOG_ROOT = Path(__file__).resolve().parents[3] / '.ros' / 'test-logs'
CONFIG = Path(__file__).resolve().parents[1] / 'config'
W, H = 80, 60
RED, BLUE, GREEN = (200, 30, 30), (30, 30, 200), (30, 200, 30)
NODES = ['perception', 'affordance', 'arm', 'hand_driver', 'episode']


@pytest.fixture(scope='module')
def camera_graph(ros, tmp_path_factory):
    """Start the graph without the simulated world: the test publishes the camera topics."""
    overrides = {name: dict(FAST_SIM.get(name, {}), **WALL_CLOCK) for name in NODES}
    overrides['perception'] = {'frame_timeout': 1.5, 'backend': 'fake',  # frames, not objects
                               **WALL_CLOCK}
    overrides['episode'].update(run_root=str(tmp_path_factory.mktemp('fresh_runs')),
                                scene_reset='none', default_reward_source='operator')
    graph = start_graph('fresh', LOG_ROOT, overrides=overrides, only=NODES, config_dir=CONFIG)
    with graph:
        probe = Probe(name='camera_probe')
        try:
            yield graph, probe
        finally:
            probe.close()


class Camera:
    """Publishes colour, depth (a flat table 0.6 m away) and camera info with chosen stamps."""

    def __init__(self, probe):
        self.colour = probe.publisher(Image, 'camera/color/image_raw')
        self.depth = probe.publisher(Image, 'camera/depth/image_raw')
        self.info = probe.publisher(CameraInfo, 'camera/color/camera_info')
        self.clock = probe.node.get_clock()

    def now(self) -> int:
        return self.clock.now().nanoseconds

    def publish(self, stamp_ns: int, rgb=RED, depth: bool = True) -> None:
        header = Header(stamp=Time(nanoseconds=stamp_ns).to_msg(),
                        frame_id='camera_color_optical_frame')
        self.info.publish(CameraInfo(header=header, width=W, height=H,
                                     k=[60.0, 0.0, W / 2, 0.0, 60.0, H / 2, 0.0, 0.0, 1.0]))
        if depth:
            self.depth.publish(image_codec.to_msg(np.full((H, W), 0.6, np.float32), '32FC1',
                                                  header))
        self.colour.publish(image_codec.to_msg(np.full((H, W, 3), rgb, np.uint8), 'rgb8',
                                               header))


def segment(probe, not_before_ns: int = 0) -> Segment.Response:
    request = Segment.Request(prompt='', not_before=Time(nanoseconds=not_before_ns).to_msg())
    return probe.call(Segment, 'perception/segment', request, timeout=15, resend_after=4.0)


def stamp_of(response) -> int:
    return Time.from_msg(response.header.stamp).nanoseconds


def test_segment_uses_only_frames_stamped_at_or_after_not_before(camera_graph):
    graph, probe = camera_graph
    camera = Camera(probe)
    old = camera.now()
    # until perception has it (its subscriptions match a moment after start-up)
    deadline = time.monotonic() + 30
    while True:
        camera.publish(old)
        r = segment(probe)
        if r.success and stamp_of(r) == old:
            break
        assert time.monotonic() < deadline, f'perception never segmented the frame: {r.error_msg}'
        time.sleep(0.3)

    later = old + 10 * 10**9
    stale = segment(probe, later)
    assert not stale.success and stale.error_code == Segment.Response.NO_IMAGE
    assert 'stamped at or after not_before within frame_timeout 1.5 s' in stale.error_msg
    assert 'the newest frame is 10.000 s older' in stale.error_msg
    prior = probe.call(PredictGrasp, 'affordance/predict', PredictGrasp.Request(
        task='pick up the cup', not_before=Time(nanoseconds=later).to_msg()), timeout=15,
        resend_after=4.0)  # passed on to perception
    assert not prior.success and prior.error_code == PredictGrasp.Response.SEGMENTATION_FAILED
    assert 'stamped at or after not_before' in prior.error_msg

    # a new colour frame 0.1 s after the old one (within max_sync_skew of its depth) whose
    # depth has not come: not paired with the old scene's depth
    newer = old + 10**8
    camera.publish(newer, depth=False)
    unpaired = segment(probe, newer)
    assert not unpaired.success and unpaired.error_code == Segment.Response.NO_IMAGE
    assert 'nothing on camera/depth/image_raw stamped at or after' in unpaired.error_msg
    assert stamp_of(segment(probe)) == newer  # without not_before the pair is fine

    # a request waits for the frame it needs (up to frame_timeout)
    fresh = old + 2 * 10**9
    timer = threading.Timer(0.5, camera.publish, (fresh,))
    timer.start()
    try:
        waited = segment(probe, fresh)
    finally:
        timer.join()
    assert waited.success, waited.error_msg
    assert stamp_of(waited) == fresh


def test_episode_perceives_and_stores_the_scene_after_it_began(camera_graph):
    """
    Red shows until the goal, blue during the motion, green only after the motion ended.

    The red scene streams until the goal is sent, the blue one from 1 s after the episode began
    until the post-grasp motion starts, the green one from 2 s after the reward phase began.
    Perception still holds red frames when the episode begins: I0 must be blue all the same. The
    final frame must be green: the newest when the operator scores is blue, from before the
    motion ended.
    """
    graph, probe = camera_graph
    camera = Camera(probe)
    colour, streaming, stop = [RED], threading.Event(), threading.Event()

    def stream():  # 5 Hz while streaming, always stamped now
        while not stop.is_set():
            if streaming.is_set():
                camera.publish(camera.now(), colour[0])
            stop.wait(0.2)

    def operator():  # scores episode 0 once it waits for its score
        while not stop.is_set():
            try:  # a copy answered "already scored" means an earlier one was taken
                r = probe.call(SubmitReward, 'submit_reward', SubmitReward.Request(
                    run_id='fresh', episode=0, reward=0.5), timeout=6, resend_after=2.0)
            except AssertionError:  # no answer yet: the episode node is busy, ask again
                continue
            if r.accepted or 'already scored' in r.message:
                return
            stop.wait(0.3)

    def show(rgb):
        colour[0] = rgb
        streaming.set()

    threads = [threading.Thread(target=stream, daemon=True),
               threading.Thread(target=operator, daemon=True)]
    blue, green = threading.Timer(1.0, show, (BLUE,)), threading.Timer(2.0, show, (GREEN,))
    client = EpisodeClient(name='fresh_client')
    try:
        streaming.set()
        threads[0].start()
        wait_until(lambda: client.wait_for_server(0.5), 60, 'the fine_tune server')
        wait_until(lambda: segment(probe).success, 30, 'perception to see the red scene')
        streaming.clear()
        time.sleep(0.5)  # the last red frame is out

        def on_feedback(fb):
            if fb.phase == 'perceive' and colour[0] == RED and not blue.is_alive():
                blue.start()
            elif fb.phase == 'post_grasp':
                streaming.clear()
            elif fb.phase == 'reward' and colour[0] == BLUE and not green.is_alive():
                green.start()
        threads[1].start()
        outcome = client.fine_tune(FineTune.Goal(
            task='pick up the cup', episodes=1, warmup_episodes=1, elites=1,
            reward_source='operator', run_id='fresh', seed=4), timeout=120,
            on_feedback=on_feedback)
    finally:
        stop.set()
        blue.cancel()
        green.cancel()
        for t in threads:
            t.join(timeout=5)
        client.close()
    assert outcome.status == GoalStatus.STATUS_SUCCEEDED, outcome.result.message
    run_dir = Path(outcome.result.run_dir)
    i0 = load_image(run_dir / 'episodes' / '000000.I0.png')
    assert tuple(int(v) for v in i0[H // 2, W // 2]) == BLUE, 'I0 shows the scene before'
    bag = read_episode_bag(episode_bag_path(run_dir, 0))
    assert tuple(int(v) for v in bag.initial_rgb[0, 0]) == BLUE
    assert tuple(int(v) for v in bag.final_rgb[0, 0]) == GREEN, 'final frame from mid-motion'
    assert [e.episode for e in RunStore(run_dir.parent, 'fresh').episodes()] == [0]
