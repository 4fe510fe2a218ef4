"""
One episode and the fine-tuning loop over the graph, for the episode node.

`EpisodeRunner.episode` runs one episode: perceive, the prior f, eps, execute xi + eps, the
reward, hand open and arm home, keeping what it produced in an EpisodeCapture; on a cancel or a
failure it opens the hand and sends the arm home before raising. `EpisodeRunner.tune` runs the
remaining episodes of a FineTuneRun (Algorithm 1): each finished episode is recorded (the
node's callback appends it atomically to the run directory; on a thread of its own while the
hand opens and the arm goes home, joined before the episode returns) before the scene is reset
and the next begins; an episode the operator discards is run again with the same eps. An
episode whose xi + eps the arm refuses before any motion (UNREACHABLE: outside its workspace or
reach) is recorded with reward 0, the floor of every reward source, so that the optimiser moves
away from it; `max_unreachable` of them in a row stop the run. (Stopping at the first, as
before, left a run that could never go on: a resumed run asks for the same eps again.) No rclpy
import: the node owns the action servers and turns what these raise into results.
"""

import traceback
from typing import Callable, Optional, Sequence

from deft_cem.episode_goals import EpisodeJob, scene_seed
from deft_cem.episode_recording import EpisodeCapture, grab_frame
from deft_cem.episode_steps import EpisodeCanceled, EpisodeFailure, EpisodeSteps, Phase, R
from deft_cem.fine_tune import FineTuneRun
from deft_common.ros_async import ThreadJob

# record(k, xi, eps, reward, refused): store finished episode k of the run (before the next
# starts); refused: why the arm refused xi + eps ('' for an executed episode)
Record = Callable[[int, Sequence[float], Sequence[float], float, str], None]
REFUSED_REWARD = 0.0  # the reward of an episode the arm refused: the floor of every source
RECORD_TIMEOUT = 120.0  # wall s an episode's record (bag, I0, run directory) may take


class RunStopped(Exception):
    """An episode of a run, or the scene reset after one, failed; the message says which."""


def unexpected(logger, kind: str, exc: Exception) -> str:
    """Log a bug or an unforeseen I/O error with its traceback; return the result message."""
    logger.error(f'{kind}: unexpected {type(exc).__name__}: {exc}\n'
                 f'{"".join(traceback.format_exception(exc))}')
    return f'internal error of the episode node ({type(exc).__name__}: {exc}); see its log'


class EpisodeRunner:
    """Runs episodes over EpisodeSteps, keeping what each produced in an EpisodeCapture."""

    def __init__(self, steps: EpisodeSteps, capture: EpisodeCapture, camera, camera_info, depth,
                 logger):
        self.steps, self.capture, self.log = steps, capture, logger
        self.camera, self.camera_info, self.depth = camera, camera_info, depth
        self.reset_first = False  # an episode lost a node: the next one resets the scene first

    def frame(self):
        """Return the newest camera frame (None: none yet)."""
        return grab_frame(self.camera, self.camera_info, self.depth)

    def streams(self):
        """Return the image streams a frame needs: colour, and depth once it streams."""
        return [self.camera] + ([self.depth] if self.depth.stamp_ns() >= 0 else [])

    async def initial_frame(self, scene: int) -> None:
        """
        Wait until this node's colour frame (and depth, once it streams) shows the scene.

        I0 conditions the residual policy and is stored with the episode: after a scene reset,
        the newest frame received may still show the scene before it.
        """
        frames = self.streams()
        if not await self.steps.fresh_frames(frames, scene):
            topics = ', '.join(['camera/color/image_raw', 'camera/depth/image_raw'][:len(frames)])
            raise EpisodeFailure(
                R.PERCEPTION_FAILED, f'the episode node received no frame on {topics} stamped '
                f'after the episode began within final_image_timeout '
                f'{self.steps.s.final_image_timeout} s, although perception did: check its '
                'camera remaps and image_qos')

    async def final_frame(self, ended: int):
        """Return the newest frame once it was taken after the motion ended (ns; else None)."""
        if await self.steps.fresh_frames(self.streams(), ended):
            return self.frame()
        self.log.warning('no camera frame taken after the motion came within '
                         f'final_image_timeout {self.steps.s.final_image_timeout} s: the '
                         'episode is stored without its final frame')
        return None

    async def episode(self, handle, job: EpisodeJob, eps_of: Callable, phase: Phase,
                      record: Optional[Callable[[Sequence[float], Sequence[float], float], None]]
                      = None):
        """
        Perceive, predict, execute xi + eps, reward, hand open and arm home: (xi, eps, r).

        `record(xi, eps, reward)`, if given, stores the scored episode: it runs on a thread of its
        own while the hand opens and the arm goes home, and has finished (or raised) when this
        returns or raises. The hand's joint states are kept from the start to the score.
        """
        steps, capture = self.steps, self.capture
        try:
            if self.reset_first:  # the last episode lost a node mid-motion: put things back
                await steps.reset(job.seed, phase)
                self.reset_first = False
            capture.start()
            scene = steps.scene_ns()  # the scene as it is now: no frame from before it counts
            await steps.perceive(job.prompt, phase, not_before=scene)
            await self.initial_frame(scene)
            capture.perceived(self.camera.latest_rgb_or_none(), self.frame())
            prior, xi = await steps.predict_prior(job.task, job.prompt, phase, job.prior,
                                                  job.prior_seed, not_before=scene)
            capture.prior = prior
            if handle.is_cancel_requested:
                raise EpisodeCanceled()
            eps = eps_of(xi)
            capture.residual(xi, eps)
            ended = await steps.execute_grasp(handle, prior.header.frame_id, xi, eps, phase,
                                              job.task)
            reward = await steps.reward(handle, job.source, job.run_id, job.index, job.task,
                                        phase)
            capture.scored(reward, job.source, await self.final_frame(ended))
            capture.joints.stop()
            saving = None if record is None else ThreadJob(
                lambda: record(xi, eps, reward), f'record of episode {job.index}')
            try:
                await steps.home(phase)
            finally:
                if saving is not None:
                    await saving.join(steps.node, RECORD_TIMEOUT, steps.group)
            return xi, eps, reward
        except EpisodeCanceled:
            await steps.safe_reset(job.seed, phase)
            raise
        except EpisodeFailure as exc:
            if exc.code == R.UNREACHABLE:  # refused before any motion: nothing to put back
                capture.joints.stop()
                raise
            if exc.code == R.SERVER_GONE:
                # Report at once: the node that went away cannot be reset now (a respawned one
                # may come within seconds); the next episode resets the scene before it starts.
                self.reset_first = True
            elif exc.code != R.RESET_FAILED:
                await steps.safe_reset(job.seed, phase)
            raise
        except Exception as exc:  # a bug or I/O error: hand open, arm home, then a clear abort
            message = str(exc) if isinstance(exc, ValueError) else \
                unexpected(self.log, 'episode', exc)
            await steps.safe_reset(job.seed, phase)
            raise EpisodeFailure(R.BAD_GOAL if isinstance(exc, ValueError)
                                 else R.SERVICE_UNAVAILABLE, message) from exc
        finally:
            capture.joints.stop()

    async def tune(self, handle, run: FineTuneRun, phase: Phase, record: Record) -> None:
        """
        Run the remaining episodes of a run, each recorded by `record` before the next starts.

        Returns when the run is done; EpisodeCanceled on cancel (hand opened, arm home);
        RunStopped when an episode, or the scene reset after one, failed.
        """
        s, run_id = run.settings, run.store.run_id
        k, where, refused = run.next_episode, 'episode', 0
        try:
            # a crashed run may have left the hand closed; the scene of the next episode
            await self.steps.reset(scene_seed(s.seed, run.next_episode), phase)
            while not run.done:
                k, where, eps_k = run.next_episode, 'episode', run.ask()
                job = EpisodeJob(s.task, s.object_prompt, s.reward_source, run_id, k,
                                 scene_seed(s.seed, k), s.prior, s.seed)
                try:
                    xi, eps, reward = await self.episode(
                        handle, job, lambda _, e=eps_k: e, phase,
                        lambda xi, eps, r, k=k: record(k, xi, eps, r, ''))
                except EpisodeFailure as exc:
                    if exc.code == R.UNREACHABLE and refused < self.steps.s.max_unreachable:
                        refused += 1
                        await self.refused(k, eps_k, str(exc), refused, record)
                        # a finished episode, as any other (the panel's curve counts it)
                        phase('warmup' if k + 1 < s.warmup_episodes else 'refit',
                              f'episode {k} refused by the arm: reward {REFUSED_REWARD}')
                        where = 'scene reset after episode'
                        await self.steps.reset_sim_scene(scene_seed(s.seed, k + 1), phase)
                        continue
                    if exc.code == R.UNREACHABLE:
                        raise RunStopped(
                            f'episode {k} failed: {exc}; {refused + 1} episodes in a row were '
                            'refused by the arm before any motion (max_unreachable '
                            f'{self.steps.s.max_unreachable}): the prior itself is likely out '
                            "of the arm's reach; check camera_to_base, the arm's workspace box "
                            "and the run's initial_std") from exc
                    if exc.code != R.REWARD_DISCARDED:
                        raise
                    self.log.info(f'episode {k} discarded; recording it again')
                    await self.steps.operator_reset(handle, run_id, k, s.task, phase)
                    continue
                refused = 0
                phase('warmup' if k + 1 < s.warmup_episodes else 'refit',
                      f'episode {k} reward {reward:.3f}')
                self.log.info(f'{run_id} episode {k}/{s.episodes}: reward {reward:.3f}, best '
                              f'{run.best_reward:.3f}')
                where = 'scene reset after episode'
                await self.steps.reset_scene(handle, scene_seed(s.seed, k + 1), run_id, k,
                                             s.task, phase)
        except EpisodeFailure as exc:
            raise RunStopped(f'{where} {k} failed: {exc}') from exc

    async def refused(self, k: int, eps: Sequence[float], why: str, in_a_row: int,
                      record: Record) -> None:
        """Record episode k, whose xi + eps the arm refused before any motion, with reward 0."""
        xi = self.capture.current.get('xi', [])
        self.log.warning(f'episode {k}: {why}; recorded with reward {REFUSED_REWARD} '
                         f'({in_a_row} in a row, at most {self.steps.s.max_unreachable})')
        job = ThreadJob(lambda: record(k, xi, eps, REFUSED_REWARD, why),
                        f'record of episode {k}')
        await job.join(self.steps.node, RECORD_TIMEOUT, self.steps.group)
