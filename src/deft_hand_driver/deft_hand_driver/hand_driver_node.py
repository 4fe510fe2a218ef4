"""
The hand driver node: `hand/joint_states`, `hand/command`, `hand/grasp` over a backend.

Also `hand/reboot_servos` (std_srvs/srv/Trigger): reboot the servos in hardware error, torque on,
hold the present position. Servo hardware errors do not stop `hand/joint_states`; they are
logged once per change and abort a running grasp with HARDWARE_ERROR. Bus faults (no answer,
corrupt or late replies, port gone: a BusFault of the backend) abort it with BUS_ERROR and the
fault's message; the log has one line per change of fault and its counts every 10 s while it
lasts (fault_log). Every callback ends in a typed answer: an unexpected exception is logged once
with its traceback and answered with INTERNAL_ERROR (or success false), the node serves on.

The control loop, grasp durations and settle_timeout run on the node's clock (NodeClock): the
wall clock on the robot, the simulated clock with use_sim_time (the sim profile), where the fake
hand's lag follows sim time too.
"""

import math
import threading
import time
import traceback

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from deft_common.node_clock import NodeClock, WallRate
from deft_common.node_main import ConfigurationError, run_node
from deft_common.ros_params import Param, declare
from deft_hand_driver.backends import BACKEND_HELP, BACKENDS, make_backend
from deft_hand_driver.fault_log import FaultLog
from deft_hand_driver.grasp_motion import StallDetector, ramp
from deft_hand_driver.hand_backend import BusFault
from deft_hand_driver.hand_config import default_config_path, load_hand_config, parse_servo_ids
from deft_hand_driver.mano import model_from_parameter
from deft_interfaces.action import HandGrasp

G = HandGrasp.Result
PARAMS = (
    Param('backend', 'fake', 'Hand hardware backend: ' + BACKEND_HELP, choices=BACKENDS),
    Param('hand_config', '', 'Hand config YAML (joints, limits, servo ids, calibration); empty = '
          'the installed LEAP-class 16-DOF hand.'),
    Param('servo_ids', '', 'dynamixel: servo ids in hand_config joint order, comma-separated '
          '(e.g. "1,0,2,3,..."), overriding the ids of hand_config; empty = its ids.'),
    Param('rate_hz', 50.0, 'Control loop and joint_states rate, Hz.', range=(1.0, 1000.0)),
    Param('feedback_rate_hz', 0.0, 'Most hand/grasp feedback messages per second of wall time '
          '(the first always comes); 0: one per control step. On sim time the steps come many '
          'times faster than real time.', range=(0.0, 1000.0)),
    Param('time_constant', 0.08, 'fake: first-order lag of the joints, s.', range=(0.001, 5.0)),
    Param('stall_closure', 0.0, 'fake: closure (0..1) where an imaginary object stops the '
          'fingers; 0 = no object.', range=(0.0, 1.0)),
    Param('port', '/dev/ttyUSB0', 'dynamixel: serial port of the servo bus (a U2D2); prefer a '
          '/dev/serial/by-id/ path, which survives replugging. Servo ids come from hand_config.'),
    Param('baud', 4000000, 'dynamixel: bus baud rate (57600 .. 4000000, as set in the servos).',
          range=(9600, 4000000)),
    Param('operating_mode', 5, 'dynamixel: 5 = current-based position, 3 = position, '
          '4 = extended position.', range=(3, 5)),
    Param('current_limit', 350.0, 'dynamixel: Current Limit and Goal Current of every servo, '
          'mA; efforts are reported as a fraction of it.', range=(1.0, 10000.0)),
    Param('position_p', 600, 'dynamixel: Position P gain (control-table units).',
          range=(0, 16383)),
    Param('position_i', 0, 'dynamixel: Position I gain (control-table units).', range=(0, 16383)),
    Param('position_d', 200, 'dynamixel: Position D gain (control-table units).',
          range=(0, 16383)),
    Param('bus_retries', 2, 'dynamixel: retries of a sync read that lost a status packet.',
          range=(0, 10)),
    Param('fast_sync_read', False, 'dynamixel: read the servos with Fast Sync Read (one status '
          'packet for all; X-series firmware 46 or newer).'),
    Param('retargeting_config', 'leap_16dof_retargeting.yaml', 'MANO goals: retargeting YAML; '
          "a bare file name is looked up in this package's config directory."),
    Param('mano_model_path', '', 'MANO goals: converted MANO model file (.npz, see README); '
          'empty = the documented kinematic approximation of an average right hand.'),
    Param('default_duration', 1.0, 'Time to reach grasp targets when a goal gives 0, s.',
          range=(0.0, 60.0)),
    Param('default_tolerance', 0.05, 'Joint error for success when a goal gives 0, rad.',
          range=(0.001, 1.0)),
    Param('settle_timeout', 2.0, 'Time after the duration before a grasp times out, s.',
          range=(0.1, 60.0)),
    Param('stall_velocity', 0.02, 'All joints slower than this count as stalled, rad/s.',
          range=(0.0, 10.0)),
    Param('stall_time', 0.3, 'How long the hand must be still to count as stalled, s.',
          range=(0.01, 10.0)),
    Param('stall_effort', 0.5, 'A stall counts as contact only if every joint short of its '
          'target pushes with at least this |effort| (fraction of current_limit); 0 = any.',
          range=(0.0, 1.0)),
)


class HandDriverNode(Node):
    """Reads the hand at a fixed rate, publishes its state and drives it to targets."""

    def __init__(self, **kwargs):
        super().__init__('hand_driver', **kwargs)
        self.p = declare(self, PARAMS)
        self.retargeter = None  # built on the first MANO goal
        self.clock = NodeClock(self)
        try:
            self.config = load_hand_config(self.p.hand_config)
            if self.p.servo_ids:
                try:
                    self.config = self.config.with_servo_ids(parse_servo_ids(self.p.servo_ids))
                except ValueError as exc:
                    raise ValueError(f'parameter servo_ids: {exc}') from None
            self.mano_model = model_from_parameter(self.p.mano_model_path)
            options = {}
            if self.p.backend == 'fake':
                options = dict(time_constant=self.p.time_constant,
                               stall_closure=self.p.stall_closure, clock=self.clock.now)
            elif self.p.backend == 'dynamixel':
                options = dict(port=self.p.port, baud=self.p.baud,
                               operating_mode=self.p.operating_mode,
                               current_limit=self.p.current_limit, position_p=self.p.position_p,
                               position_i=self.p.position_i, position_d=self.p.position_d,
                               retries=self.p.bus_retries,
                               fast_sync_read=self.p.fast_sync_read, log=self.get_logger())
            self.backend = make_backend(self.p.backend, self.config, **options)
            self.backend.connect()
            self.backend.set_torque(True)
            self.pos, self.vel, self.eff = self.backend.read()
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConfigurationError(str(exc)) from exc
        self.lock = threading.Lock()  # the shared state below
        self.bus_lock = threading.Lock()  # one user of the backend at a time
        self.closed = False
        self.setpoint = self.pos.copy()
        self.reconnects = self.backend.reconnects
        self.active_goal = None
        self.failed = ''  # the bus cannot be read (lost, reconnecting): why
        self.failed_code = G.NONE  # the grasp error code of `failed`
        self.faults = FaultLog('hand bus', period=10.0)  # one log line per change of fault
        self.malformed = {}  # id(goal request) -> (code, why): accepted, then aborted at once
        self._logged = set()  # unexpected exceptions logged with their traceback already
        self.hw_errors = []  # servo hardware errors of the last read
        self.pub = self.create_publisher(JointState, 'hand/joint_states', 10)
        group = ReentrantCallbackGroup()
        self.create_service(Trigger, 'hand/reboot_servos', self.on_reboot, callback_group=group)
        self.create_subscription(JointState, 'hand/command', self.on_command, 10,
                                 callback_group=group)
        self.server = ActionServer(
            self, HandGrasp, 'hand/grasp', execute_callback=self.execute,
            goal_callback=self.on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=group)
        # The control loop has its own thread, not an executor timer: a timer shares the
        # executor's threads with the grasp goals and service calls, and a busy or starved
        # executor would leave the servos without reads and setpoints for as long as it lasts.
        self.loop_stop = threading.Event()
        self.loop = threading.Thread(target=self.control_loop, name='hand_control', daemon=True)
        self.loop.start()
        self.get_logger().info(f'{self.p.backend} hand {self.config.name!r}: '
                               f'{self.config.size} joints at {self.p.rate_hz:.0f} Hz')

    # --- the control loop ---------------------------------------------------------------
    def control_loop(self) -> None:
        """Run control_step at rate_hz until destroy_node; an overrun skips, never bursts."""
        period = 1.0 / self.p.rate_hz
        due = self.clock.now()
        while not self.loop_stop.is_set():
            self.control_step()
            due += period
            now = self.clock.now()
            if not now - period <= due <= now + period:  # a stall, or the clock went back:
                due = now                                # restart the schedule
            while not self.clock.wait_until(due, self.loop_stop):
                if self.loop_stop.is_set():
                    return

    def control_step(self) -> None:
        """Read the backend, publish joint_states, write the current setpoint."""
        with self.bus_lock:
            if self.closed:
                return
            try:
                self._step()
            except Exception as exc:  # a bug: logged once with its traceback; the loop goes on
                self._fault(f'internal {type(exc).__name__}: {exc}', G.INTERNAL_ERROR,
                            self.unexpected('the control loop', exc))

    def _step(self) -> None:
        try:
            pos, vel, eff = self.backend.read()
        except (RuntimeError, OSError) as exc:
            self._bus_error(exc)
            return
        self._log(self.faults.ok(time.monotonic(), self.backend.bus_faults()))
        with self.lock:
            self.pos, self.vel, self.eff = pos, vel, eff
            if self.backend.reconnects != self.reconnects:
                # the servos came back holding where they are: never jump to a setpoint
                # from before the outage (fingers may have sagged meanwhile)
                self.reconnects = self.backend.reconnects
                self.setpoint = pos.copy()
                self.get_logger().warning(
                    'hand bus reconnected: setpoint reset to the measured position '
                    f'[{", ".join(f"{v:.3f}" for v in pos)}] rad')
            setpoint = self.setpoint.copy()
        # cleared once the state above is the bus's (a reader that sees the bus healthy again
        # also sees the setpoint a reconnect reset)
        self.failed = ''
        msg = JointState(name=self.config.joint_names, position=pos.tolist(),
                         velocity=vel.tolist(), effort=eff.tolist())
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub.publish(msg)
        try:
            self.backend.write(setpoint)
        except (RuntimeError, OSError) as exc:
            self._bus_error(exc)
        errors = self.backend.hardware_errors()
        if errors != self.hw_errors:  # once per change
            if errors:
                self.get_logger().error('servo hardware error: ' + '; '.join(errors) +
                                        ' (call hand/reboot_servos to clear it)')
            else:
                self.get_logger().info('servo hardware errors cleared')
        self.hw_errors = errors

    def _bus_error(self, exc: Exception) -> None:
        """Keep a bus error for grasps to see; log it once per change (BusFault.key)."""
        if isinstance(exc, BusFault):
            self._fault(exc.key, G.BUS_ERROR, str(exc))
        else:
            self._fault(str(exc), G.HARDWARE_ERROR, f'hand bus error: {exc}')

    def _fault(self, key: str, code: int, message: str) -> None:
        self._log(self.faults.failed(key, message, time.monotonic(), self.backend.bus_faults()))
        self.failed, self.failed_code = message, code

    def _log(self, lines) -> None:
        log = self.get_logger()  # rclpy ties a severity to each call site: one call per severity
        for severity, text in lines:
            if severity == 'error':
                log.error(text)
            elif severity == 'warning':
                log.warning(text)
            else:
                log.info(text)

    def unexpected(self, where: str, exc: Exception) -> str:
        """Log an unexpected exception with its traceback (once per kind); return the message."""
        what = f'{type(exc).__name__}: {exc}'
        if (where, what) not in self._logged and len(self._logged) < 100:
            self._logged.add((where, what))
            self.get_logger().error(f'unexpected error in {where}: {what}\n' +
                                    ''.join(traceback.format_exception(exc)))
        return f'internal error of the hand driver in {where} ({what}); see its log'

    def on_reboot(self, request, response):
        """Reboot the servos in hardware error; success false with the reason if it fails."""
        try:
            return self._reboot(response)
        except Exception as exc:  # a bug: answered all the same
            response.success, response.message = False, self.unexpected('hand/reboot_servos', exc)
            return response

    def _reboot(self, response):
        """Reboot the servos in hardware error, torque back on, hold the present position."""
        with self.bus_lock:
            if self.closed:
                response.success, response.message = False, 'the driver is shutting down'
                return response
            try:
                ids = self.backend.reboot_faulted()
                pos, vel, eff = self.backend.read()
            except (RuntimeError, OSError) as exc:
                response.success, response.message = False, f'reboot failed: {exc}'
                self.get_logger().error(response.message)
                return response
            with self.lock:
                self.pos, self.vel, self.eff = pos, vel, eff
                self.setpoint = pos.copy()
            self.hw_errors = self.backend.hardware_errors()
        response.success = True
        if ids:
            response.message = (f'rebooted servo id(s) {", ".join(map(str, ids))}; torque on, '
                                'holding the present position')
        else:
            response.message = 'no servo in hardware error; nothing rebooted'
        self.get_logger().info(response.message)
        return response

    def set_targets(self, names, positions, base=None):
        """Resolve targets by name, clamp them (warning) and make them the setpoint."""
        targets, clamped = self.config.resolve(names, positions, base)
        if clamped:
            self.get_logger().warning(f'targets clamped to the limits for {", ".join(clamped)}',
                                      throttle_duration_sec=2.0)
        return targets

    def on_command(self, msg: JointState) -> None:
        """Stream targets: names + positions, applied at once."""
        with self.lock:
            base = self.setpoint.copy()
        try:
            targets = self.set_targets(list(msg.name), list(msg.position), base)
        except ValueError as exc:
            self.get_logger().warning(f'hand/command ignored: {exc}', throttle_duration_sec=2.0)
            return
        except Exception as exc:  # a bug: the message is dropped, the node serves on
            self.unexpected('hand/command', exc)
            return
        with self.lock:
            self.setpoint = targets

    # --- the grasp action ---------------------------------------------------------------
    def goal_targets(self, goal) -> np.ndarray:
        """Return the full target vector of a goal; ValueError if malformed."""
        if goal.duration < 0 or goal.tolerance < 0 or not math.isfinite(goal.duration):
            raise ValueError('duration and tolerance must be finite and >= 0')
        given = [k for k, v in (('named_pose', goal.named_pose),
                                ('joint targets', goal.joint_names),
                                ('mano_pose', len(goal.mano_pose))) if v]
        if len(given) > 1:
            raise ValueError(f'give one of named_pose, joint targets or mano_pose, not '
                             f'{" and ".join(given)}')
        if goal.named_pose:
            return self.config.pose(goal.named_pose)
        if len(goal.mano_pose):
            return self.retarget(goal.mano_pose)
        if not goal.joint_names:
            raise ValueError('no targets: give named_pose or joint_names + joint_positions')
        with self.lock:
            base = self.setpoint.copy()
        return self.set_targets(list(goal.joint_names), list(goal.joint_positions), base)

    def retarget(self, mano_pose) -> np.ndarray:
        """Return the hand's targets for a MANO pose (45 values); ValueError if malformed."""
        pose = np.asarray(mano_pose, dtype=float)
        if pose.shape != (45,) or not np.all(np.isfinite(pose)):
            raise ValueError(f'mano_pose needs 45 finite values (15 joints x 3), got {pose.size}')
        if self.retargeter is None:
            from deft_hand_driver.retargeting import build_retargeter
            from deft_hand_driver.retargeting_config import load_retargeting_config
            path = self.p.retargeting_config
            if '/' not in path:
                path = str(default_config_path().parent / path)
            try:
                hand, config = load_retargeting_config(path)
            except OSError as exc:
                raise ValueError(f'retargeting_config: {exc}') from exc
            self.retargeter = build_retargeter(hand, config, self.mano_model)
        self.retargeter.reset()  # one grasp: no smoothing with an unrelated earlier pose
        joints = self.retargeter.retarget(pose)
        return self.set_targets(list(self.retargeter.hand.joint_names), list(joints),
                                self.config.pose('open'))

    def on_goal(self, goal) -> GoalResponse:
        """Accept every goal; a malformed one is aborted at once with BAD_GOAL and the reason."""
        try:
            self.goal_targets(goal)
        except ValueError as exc:
            self.malformed[id(goal)] = (G.BAD_GOAL, str(exc))
            self.get_logger().warning(f'hand/grasp goal malformed (aborting it): {exc}')
        except Exception as exc:  # a bug in checking it: aborted too, with the reason
            self.malformed[id(goal)] = (G.INTERNAL_ERROR, self.unexpected('hand/grasp', exc))
        return GoalResponse.ACCEPT

    def execute(self, handle):
        """Run a goal to exactly one of succeed/abort/canceled, with a result, whatever happens."""
        result = G(joint_names=self.config.joint_names)
        try:
            refused = self.malformed.pop(id(handle.request), None)
            if refused is not None:  # never touches the hand nor a running goal
                kind, (result.error_code, result.message) = 'abort', refused
            else:
                kind = self._execute(handle, result)
        except Exception as exc:  # a bug: hold where the hand is, answer with the reason
            with self.lock:
                self.setpoint = self.pos.copy()
            kind, result.error_code = 'abort', G.INTERNAL_ERROR
            result.message = self.unexpected('hand/grasp', exc)
        with self.lock:
            result.joint_positions = self.pos.tolist()
        result.success = kind == 'succeed'
        if kind == 'cancel':
            handle.canceled()
        elif kind == 'succeed':
            handle.succeed()
        else:
            handle.abort()
        return result

    def _execute(self, handle, result) -> str:
        """Ramp the setpoint to the targets, then wait for arrival, a stall or the timeout."""
        goal = handle.request
        try:  # checked in on_goal already; joint targets are relative to the setpoint of now
            goal_pos = self.goal_targets(goal)
        except ValueError as exc:
            result.error_code, result.message = G.BAD_GOAL, str(exc)
            return 'abort'
        me = object()
        self.active_goal = me
        duration = goal.duration or self.p.default_duration
        tol = goal.tolerance or self.p.default_tolerance
        with self.lock:
            start = self.setpoint.copy()
        stall = StallDetector(self.p.stall_velocity, self.p.stall_time, self.p.stall_effort)
        t0 = self.clock.now()
        period = 1.0 / self.p.rate_hz
        rate = WallRate(self.p.feedback_rate_hz)
        outcome = None
        while outcome is None:
            # counted from now if the clock went back (a restarted sim node) or started after
            # the goal came (sim time: no /clock yet)
            t0, elapsed = self.clock.since(t0)
            if self.active_goal is not me:
                outcome = ('abort', G.CANCELED, 'preempted by a newer hand/grasp goal')
                break
            if handle.is_cancel_requested:
                with self.lock:
                    self.setpoint = self.pos.copy()  # hold where it is
                outcome = ('cancel', G.CANCELED, 'cancelled; holding the current position')
                break
            if self.hw_errors:
                outcome = ('abort', G.HARDWARE_ERROR, 'servo hardware error: ' +
                           '; '.join(self.hw_errors) + ' (call hand/reboot_servos to clear it)')
                break
            if self.failed:
                outcome = ('abort', self.failed_code, self.failed)
                break
            with self.lock:
                self.setpoint = ramp(start, goal_pos, elapsed, duration)
                pos, vel, eff = self.pos.copy(), self.vel.copy(), self.eff.copy()
            error = float(np.max(np.abs(goal_pos - pos)))
            if rate.due():
                handle.publish_feedback(HandGrasp.Feedback(max_error=error, elapsed=elapsed))
            if elapsed >= duration:
                if error <= tol:
                    outcome = ('succeed', G.NONE, f'reached the targets (max error {error:.3f})')
                elif stall.update(elapsed, vel, eff, np.abs(goal_pos - pos) > tol):
                    result.stalled = True
                    outcome = ('succeed', G.NONE, f'stalled on contact {error:.3f} rad short '
                               'of the targets')
                elif elapsed > duration + self.p.settle_timeout:
                    worst = self.config.joint_names[int(np.argmax(np.abs(goal_pos - pos)))]
                    outcome = ('abort', G.TIMEOUT, f'targets not reached after {elapsed:.1f} s '
                               f'(max error {error:.3f} rad at {worst})')
            if outcome is None:  # on sim time may return early: the loop checks again
                self.clock.wait_until(self.clock.now() + period)
        kind, result.error_code, result.message = outcome
        return kind

    def destroy_node(self):
        """Stop the control loop, torque off, close the port (even if the torque-off failed)."""
        if getattr(self, 'loop', None) is not None:
            self.loop_stop.set()
            if self.loop is not threading.current_thread():
                self.loop.join(timeout=5.0)
        lock = getattr(self, 'bus_lock', None)
        with lock or threading.Lock():  # waits for a control step in progress
            if lock is not None and not self.closed:
                self.closed = True
                try:
                    self.backend.set_torque(False)
                except (RuntimeError, OSError) as exc:
                    self.get_logger().error(f'could not switch the torque off: {exc}')
                finally:
                    try:
                        self.backend.close()
                    except (RuntimeError, OSError) as exc:
                        self.get_logger().error(f'could not close the hand bus: {exc}')
        if getattr(self, 'clock', None) is not None:
            self.clock.close()
        return super().destroy_node()


def main(args=None):
    """Run the hand driver node."""
    raise SystemExit(run_node(HandDriverNode, args, params=PARAMS))
