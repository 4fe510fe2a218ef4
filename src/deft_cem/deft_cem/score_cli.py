"""
`deft_score`: the operator's terminal. Scores each episode that waits, confirms scene resets.

    deft_score      # namespace /deft; type a score in [0, 1], "d" to discard, "q" to quit

It listens to `reward_request` (the episode node announces there which run and episode is waiting)
and calls `submit_reward`; with the episode node's `scene_reset: operator` it also listens to
`reset_request` and, once you press Enter ("the scene is reset"), calls `reset_done`. rqt's
service caller on `submit_reward` and `reset_done` does the same by hand.
"""

import argparse
import math
import queue
import sys
import threading
import time
from typing import Callable, Optional, Sequence, TextIO, Tuple

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_srvs.srv import Trigger

from deft_interfaces.msg import EpisodeRecord
from deft_interfaces.srv import SubmitReward


def parse_score(text: str) -> Tuple[str, float]:
    """Read an operator's answer: ('score', value) | ('discard', nan) | ('quit', nan)."""
    text = text.strip().lower()
    if text in ('q', 'quit', 'exit'):
        return 'quit', math.nan
    if text in ('d', 'discard'):
        return 'discard', math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f'{text!r} is not a score; type a number in [0, 1], d or q') from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f'{value} is outside [0, 1]')
    return 'score', value


def describe(record: EpisodeRecord, top: int = 6) -> str:
    """Return a few lines about the waiting episode."""
    label = f'episode {record.episode}' if record.episode >= 0 else 'one-off episode'
    lines = [f'{label} of run {record.run_id!r} waits for a score: "{record.task}"']
    if record.eps:
        biggest = sorted(zip(record.parameter_names, record.eps), key=lambda p: -abs(p[1]))[:top]
        lines.append('  largest residuals: ' + ', '.join(f'{n} {v:+.3f}' for n, v in biggest))
    return '\n'.join(lines)


def describe_reset(record: EpisodeRecord) -> str:
    """Return the line asking the operator to reset the scene after an episode."""
    label = f'episode {record.episode}' if record.episode >= 0 else 'one-off episode'
    reward = '' if math.isnan(record.reward) else f', reward {record.reward:.3f}'
    return (f'{label} of run {record.run_id!r} is done{reward}: put the scene back '
            '(object in place, nothing in the hand)')


def _wait(future, timeout: float):
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return future.result() if done.wait(timeout) else None


class ScoreTerminal(Node):
    """Subscribes to reward and reset requests; calls submit_reward or reset_done per answer."""

    def __init__(self, namespace: str = '/deft'):
        super().__init__('score_terminal', namespace=namespace)
        self.requests: 'queue.Queue[EpisodeRecord]' = queue.Queue()
        self.resets: 'queue.Queue[EpisodeRecord]' = queue.Queue()
        self.client = self.create_client(SubmitReward, 'submit_reward')
        self.reset_client = self.create_client(Trigger, 'reset_done')
        qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(EpisodeRecord, 'reward_request', self.requests.put, qos)
        self.create_subscription(EpisodeRecord, 'reset_request', self.resets.put, qos)

    def reset_done(self, timeout: float = 10.0) -> Tuple[bool, str]:
        """Tell the episode node the scene is reset; return (accepted, message)."""
        if not self.reset_client.wait_for_service(timeout_sec=timeout):
            return False, 'reset_done is not available (is the episode node running?)'
        response = _wait(self.reset_client.call_async(Trigger.Request()), timeout)
        if response is None:
            return False, f'no answer from reset_done within {timeout} s'
        return response.success, response.message

    def submit(self, record: EpisodeRecord, kind: str, value: float,
               timeout: float = 10.0) -> Tuple[bool, str]:
        """Send the answer; return (accepted, message)."""
        if not self.client.wait_for_service(timeout_sec=timeout):
            return False, 'submit_reward is not available (is the episode node running?)'
        request = SubmitReward.Request(run_id=record.run_id, episode=record.episode,
                                       reward=0.0 if kind == 'discard' else value,
                                       discard=kind == 'discard')
        response = _wait(self.client.call_async(request), timeout)
        if response is None:
            return False, f'no answer from submit_reward within {timeout} s'
        return response.accepted, response.message


def waits(record: EpisodeRecord) -> bool:
    """Tell an announcement of a waiting episode from a "nothing waits" one (no source)."""
    return record.reward_source != ''


def same_episode(a: EpisodeRecord, b: EpisodeRecord) -> bool:
    """Return True when two announcements name the same waiting episode."""
    return (a.run_id, a.episode, a.reward_source, a.stamp.sec, a.stamp.nanosec) == \
        (b.run_id, b.episode, b.reward_source, b.stamp.sec, b.stamp.nanosec)


def latest(requests: 'queue.Queue[EpisodeRecord]') -> Optional[EpisodeRecord]:
    """Drain the queue; return its newest announcement (None if it was empty)."""
    newest = None
    while True:
        try:
            newest = requests.get_nowait()
        except queue.Empty:
            return newest


class LineReader:
    """Reads a text stream on a thread, so waiting for episodes can notice EOF and "q"."""

    def __init__(self, stream: TextIO):
        self.lines: 'queue.Queue[str]' = queue.Queue()
        self.eof = threading.Event()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: TextIO) -> None:
        for line in iter(stream.readline, ''):
            self.lines.put(line)
        self.eof.set()

    def finished(self) -> bool:
        """Return True when the input ended (or "q" is next) with nothing else pending."""
        pending = list(self.lines.queue)
        if pending:
            try:
                return parse_score(pending[0])[0] == 'quit'
            except ValueError:
                return False
        return self.eof.is_set()

    def readline(self) -> str:
        """Return the next line, '' at EOF."""
        while True:
            try:
                return self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.eof.is_set() and self.lines.empty():
                    return ''


def next_request(node, reader: LineReader, alive: Callable[[], bool]
                 ) -> Optional[Tuple[str, EpisodeRecord]]:
    """Wait for an episode waiting for a score or a reset: ('reward'|'reset', record)."""
    pending = {'reward': None, 'reset': None}
    while True:
        for kind, requests in (('reward', node.requests), ('reset', node.resets)):
            newest = latest(requests)
            if newest is not None:
                pending[kind] = newest if waits(newest) else None
            if pending[kind] is not None:
                return kind, pending[kind]
        if not alive() or reader.finished():
            return None
        time.sleep(0.1)


def ask_score(node, record: EpisodeRecord, reader: LineReader, out: TextIO) -> bool:
    """Ask for the waiting episode's score until one is sent; False to quit."""
    print(describe(record), file=out, flush=True)
    while True:
        print('score [0..1], d = discard, q = quit: ', end='', file=out, flush=True)
        line = reader.readline()
        if not line:
            return False
        newer = latest(node.requests)
        if newer is not None and not same_episode(newer, record):
            if not waits(newer):
                print('\n  that episode no longer waits (scored elsewhere, cancelled or '
                      'timed out)', file=out, flush=True)
                return True
            record = newer
            print('\n' + describe(record), file=out, flush=True)
        try:
            kind, value = parse_score(line)
        except ValueError as exc:
            print(f'  {exc}', file=out, flush=True)
            continue
        if kind == 'quit':
            return False
        accepted, message = node.submit(record, kind, value)
        print(f'  {"sent" if accepted else "refused"}: {message}', file=out, flush=True)
        if accepted or 'no episode is waiting' in message:
            return True


def ask_reset(node, record: EpisodeRecord, reader: LineReader, out: TextIO) -> bool:
    """Ask the operator to reset the scene; call reset_done on Enter. False to quit."""
    print(describe_reset(record), file=out, flush=True)
    print('press Enter when the scene is reset (q = quit): ', end='', file=out, flush=True)
    line = reader.readline()
    if not line or line.strip().lower() in ('q', 'quit', 'exit'):
        return False
    newer = latest(node.resets)
    if newer is not None and not same_episode(newer, record) and not waits(newer):
        print('\n  that episode no longer waits for a reset (timed out or cancelled)',
              file=out, flush=True)
        return True
    accepted, message = node.reset_done()
    print(f'  {"sent" if accepted else "refused"}: {message}', file=out, flush=True)
    return True


def loop(node: ScoreTerminal, stdin: TextIO, out: TextIO,
         alive: Callable[[], bool] = rclpy.ok) -> int:
    """Score each waiting episode and confirm each scene reset until EOF or q."""
    print('deft_score: waiting for episodes (q to quit)', file=out, flush=True)
    reader = LineReader(stdin)
    while True:
        request = next_request(node, reader, alive)
        if request is None:
            return 0
        kind, record = request
        ask = ask_score if kind == 'reward' else ask_reset
        if not ask(node, record, reader, out):
            return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the operator's terminal."""
    parser = argparse.ArgumentParser(prog='deft_score', description=__doc__.split('\n\n')[0])
    parser.add_argument('--namespace', default='/deft')
    opts, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = ScoreTerminal(opts.namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        return loop(node, sys.stdin, sys.stdout)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
