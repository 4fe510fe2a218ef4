"""The arm node: `arm/execute_grasp`, `arm/home`, `arm/wrist_pose` over a backend."""

import math
import threading

from action_msgs.msg import GoalStatus
from geometry_msgs.msg import PoseStamped
import numpy as np
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from deft_arm.backends import BACKENDS, MotionError, make_backend
from deft_arm.motion import Pose, Workspace, interpolate, pre_grasp_pose, waypoint_pose
from deft_common.node_clock import NodeClock, WallRate
from deft_common.node_main import ConfigurationError, internal_error, run_node
from deft_common.ros_async import ServerWatch, send_goal_served, wait_served
from deft_common.ros_params import Param, declare
from deft_interfaces.action import ExecuteGrasp, HandGrasp

E = ExecuteGrasp.Result
PARAMS = (
    Param('backend', 'fake', 'Arm backend: fake (honest dry run: no hardware, no kinematics; the '
          'wrist pose is interpolated in real time at the speed limits) or moveit (moveit_py: '
          'plans, checks by IK and executes on your arm; moveit_* parameters).',
          choices=BACKENDS),
    Param('base_frame', 'base_link', 'Frame of every pose (the arm base).'),
    Param('home_pose', [0.2, 0.0, 0.45, 1.0, 0.0, 0.0, 0.0],
          'Home wrist pose, x y z (m) qx qy qz qw, base frame (default: palm down, out of the '
          "camera's view of the objects)."),
    Param('workspace_min', [0.1, -0.5, 0.0], 'Workspace box minimum x y z, m.'),
    Param('workspace_max', [0.8, 0.5, 0.7], 'Workspace box maximum x y z, m.'),
    Param('max_speed', 0.25, 'Cartesian wrist speed limit, m/s.', range=(0.001, 5.0)),
    Param('max_angular_speed', 1.5, 'Wrist rotation speed limit, rad/s.', range=(0.01, 20.0)),
    Param('control_rate_hz', 50.0, 'Rate of motion steps, Hz.', range=(1.0, 1000.0)),
    Param('approach_distance', 0.08, 'Default pre-grasp distance, m.', range=(0.0, 0.5)),
    Param('hand_action', 'hand/grasp', 'Action that closes and opens the hand.'),
    Param('hand_timeout', 10.0, 'Seconds a hand goal may take.', range=(0.1, 600.0)),
    Param('state_rate_hz', 20.0, 'Rate of arm/wrist_pose, Hz (on sim time the fake arm also '
          'publishes it at each motion step: the simulated world follows it in lockstep).',
          range=(0.1, 1000.0)),
    Param('feedback_rate_hz', 0.0, 'Most execute_grasp feedback messages per second of wall '
          "time (each stage's first and last step always come); 0: one per motion step. On sim "
          'time the steps come many times faster than real time.', range=(0.0, 1000.0)),
    Param('home_at_once', False, 'fake only: arm/home puts the wrist home in one step instead of '
          'moving there (the sim profile: the scene reset that follows puts the simulated robot '
          'home anyway).'),
    # backend moveit only (moveit_py); the names after moveit_ are MoveItSettings fields
    Param('moveit_node_name', 'arm_moveit_py',
          'Name of the node moveit_py starts in this process (root namespace).'),
    Param('moveit_config_file', '',
          'Parameter YAML with the MoveIt configuration for that node (robot_description, '
          'robot_description_semantic, kinematics, planning pipelines, controllers; keyed /** '
          'or by moveit_node_name); empty: the --params-file arguments of this process.'),
    Param('moveit_planning_group', 'arm', 'MoveIt planning group of the arm.'),
    Param('moveit_end_effector_link', 'tool0',
          'Link whose pose is the wrist pose (its +z is the palm approach axis).'),
    Param('moveit_planning_pipeline', 'ompl', 'Planning pipeline of free motions.'),
    Param('moveit_planner_id', '', "Planner of free motions (empty: the pipeline's default)."),
    Param('moveit_planning_time', 5.0, 'Seconds the planner may take per motion.',
          range=(0.1, 120.0)),
    Param('moveit_planning_attempts', 1, 'Planning attempts per motion.', range=(1, 100)),
    Param('moveit_velocity_scaling', 0.1, 'Fraction of the joint velocity limits.',
          range=(0.01, 1.0)),
    Param('moveit_acceleration_scaling', 0.1, 'Fraction of the joint acceleration limits.',
          range=(0.01, 1.0)),
    Param('moveit_linear_pipeline', 'pilz_industrial_motion_planner',
          'Pipeline of straight wrist lines: approach, retreat, post-grasp (empty: plan them as '
          'free motions).'),
    Param('moveit_linear_planner_id', 'LIN', 'Planner of straight wrist lines.'),
    Param('moveit_execution_timeout', 10.0,
          'Seconds an execution may overrun its planned duration before the arm is stopped.',
          range=(0.1, 600.0)),
    Param('moveit_ik_timeout', 0.05, 'Seconds of IK search per pose in the reachability check.',
          range=(0.001, 10.0)),
)


def finite(*values) -> bool:
    """Return whether every value is a finite number."""
    return all(math.isfinite(v) for v in values)


class ArmNode(Node):
    """Executes grasps: pre-grasp, approach, close the hand, post-grasp trajectory."""

    def __init__(self, **kwargs):
        super().__init__('arm', **kwargs)
        self.p = declare(self, PARAMS)
        try:
            self.home = Pose.from_list(self.p.home_pose)
            self.workspace = Workspace(np.array(self.p.workspace_min, dtype=float),
                                       np.array(self.p.workspace_max, dtype=float))
            if self.workspace.low.shape != (3,) or self.workspace.high.shape != (3,) or \
                    np.any(self.workspace.low >= self.workspace.high):
                raise ValueError('workspace_min/max need 3 values each with min < max')
            if self.workspace.check(self.home, 'home_pose'):
                raise ValueError(self.workspace.check(self.home, 'home_pose'))
            self.clock = NodeClock(self)
            options = {}
            if self.p.backend == 'fake':
                options = dict(clock=self.clock if self.clock.sim else None,
                               at_once=self.p.home_at_once)
            elif self.p.home_at_once:
                raise ValueError('home_at_once is for the fake (simulated) arm only')
            if self.p.backend == 'moveit':
                options = {k[len('moveit_'):]: v for k, v in vars(self.p).items()
                           if k.startswith('moveit_')}
                options.update(base_frame=self.p.base_frame, workspace=self.workspace)
            self.backend = make_backend(self.p.backend, self.home, **options)
        except (ValueError, RuntimeError) as exc:
            raise ConfigurationError(str(exc)) from exc
        self.group = ReentrantCallbackGroup()
        self.motion_lock = threading.Lock()
        self.busy = False
        self.motion_end = None  # node clock when the last motion ended (execute_grasp's result)
        self.shutting_down = False  # set by begin_shutdown: motions stop at their next step
        self.pose_pub = self.create_publisher(PoseStamped, 'arm/wrist_pose', 10)
        self.create_timer(1.0 / self.p.state_rate_hz, self.publish_pose)
        self.hand = ActionClient(self, HandGrasp, self.p.hand_action, callback_group=self.group)
        self.create_service(Trigger, 'arm/home', self.on_home, callback_group=self.group)
        self.server = ActionServer(
            self, ExecuteGrasp, 'arm/execute_grasp', execute_callback=self.execute,
            goal_callback=self.on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=self.group)
        self.get_logger().info(f'{self.p.backend} arm ready, home {self.p.home_pose[:3]}')

    def publish_pose(self) -> None:
        """Publish the wrist pose."""
        pose = self.backend.current_pose()
        msg = PoseStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.p.base_frame
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = \
            (float(v) for v in pose.position)
        o = msg.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in pose.orientation)
        self.pose_pub.publish(msg)

    def destroy_node(self):
        """Release the arm backend."""
        self.backend.close()
        self.clock.close()
        return super().destroy_node()

    def move_to(self, goal: Pose, should_stop=lambda: False, on_step=lambda k, p: None,
                speed: float = 0.0, linear: bool = False) -> bool:
        """Move the wrist to a pose at the speed limits; False if stopped, MotionError."""
        if self.clock.sim:  # the simulated world steps in lockstep with the wrist's states
            def stepped(k, pose, on_step=on_step):
                self.publish_pose()
                on_step(k, pose)
            on_step = stepped
        with self.motion_lock:
            path = interpolate(self.backend.current_pose(), goal, speed or self.p.max_speed,
                               self.p.max_angular_speed, self.p.control_rate_hz)
            try:
                return self.backend.move(path, self.p.control_rate_hz, should_stop, on_step,
                                         linear=linear)
            finally:
                self.motion_end = self.get_clock().now()

    def on_home(self, request, response):
        """Move home (blocks this service call until there)."""
        if self.busy:
            response.success, response.message = False, 'a grasp is being executed'
            return response
        try:
            with self.motion_lock:
                jumped = self.backend.go_home(lambda k, p: self.publish_pose())
            if jumped is None and not self.move_to(self.home, lambda: self.shutting_down):
                response.success, response.message = False, 'not home: the node is stopping'
                return response
        except MotionError as exc:
            response.success, response.message = False, f'not home: {exc}'
            return response
        except Exception as exc:  # a bug: an answer, never a dead node
            response.success = False
            response.message = internal_error(self.get_logger(), 'arm/home', exc)
            return response
        response.success, response.message = True, 'home'
        return response

    # --- execute_grasp ------------------------------------------------------------------
    def malformed(self, goal) -> str:
        """Return why a goal is malformed ('' if it is not)."""
        frame = goal.contact_point.header.frame_id
        if frame not in ('', self.p.base_frame):
            return f'contact_point is in frame {frame!r}; expected {self.p.base_frame!r}'
        c, q = goal.contact_point.point, goal.wrist_orientation
        if not finite(c.x, c.y, c.z, q.x, q.y, q.z, q.w):
            return 'contact_point and wrist_orientation must be finite'
        if math.hypot(q.x, q.y, q.z, q.w) < 1e-6:
            return 'wrist_orientation is a zero quaternion'
        if goal.approach_distance < 0 or goal.max_speed < 0:
            return 'approach_distance and max_speed must be >= 0'
        if len(goal.hand_joint_names) != len(goal.hand_joint_positions):
            return 'hand_joint_names and hand_joint_positions differ in length'
        for wp in goal.post_grasp_waypoints:
            p, o = wp.position, wp.orientation
            if not finite(p.x, p.y, p.z, o.x, o.y, o.z, o.w):
                return 'post_grasp_waypoints must be finite'
        return ''

    def on_goal(self, goal) -> GoalResponse:
        """Reject malformed goals, and any goal while one runs (reason in the log)."""
        reason = 'a grasp is already being executed' if self.busy else self.malformed(goal)
        if reason:
            self.get_logger().warning(f'execute_grasp goal rejected: {reason}')
            return GoalResponse.REJECT
        self.busy = True
        return GoalResponse.ACCEPT

    async def hand_goal(self, goal: HandGrasp.Goal) -> str:
        """Send a hand goal and await it; return '' on success, else why not."""
        if not self.hand.wait_for_server(timeout_sec=min(2.0, self.p.hand_timeout)):
            return f'hand action {self.p.hand_action} is not available (is the hand driver up?)'
        watch = ServerWatch.action(self, self.p.hand_action)  # before the goal: it may die first
        ended, handle = await send_goal_served(self, self.hand, goal, watch, self.p.hand_timeout,
                                               self.group, stop=lambda: self.shutting_down)
        if ended == 'timeout':
            return (f'the hand driver did not answer the goal within {self.p.hand_timeout} s '
                    '(is it still running?)')
        if ended == 'done':
            if not handle.accepted:
                return 'the hand rejected the grasp targets'
            result = handle.get_result_async()
            ended = await wait_served(self, result, watch, self.p.hand_timeout, self.group,
                                      stop=lambda: self.shutting_down)
        if ended != 'done':
            return {'stopped': 'the arm node is stopping',
                    'gone': 'the hand driver went away during the grasp (its process ended)',
                    'timeout': f'the hand did not finish within {self.p.hand_timeout} s'}[ended]
        wrapped = result.result()
        if wrapped.status != GoalStatus.STATUS_SUCCEEDED:
            return f'hand: {wrapped.result.message}'
        return ''

    def begin_shutdown(self) -> None:
        """Stop any motion at its next step (run_node calls this first when the node stops)."""
        self.shutting_down = True

    def end_on_shutdown(self, handle, stage: str) -> ExecuteGrasp.Result:
        """
        End a goal whose motion the node's shutdown stopped: no retreat and no hand motion.

        A stopping process must not start motions (the hand driver may be gone already, and a
        retreat would outlive the Ctrl-C that asked for a stop). The goal ends aborted (canceled
        only when the client asked for it: the goal is not in the CANCELING state otherwise).
        """
        if handle.is_cancel_requested:
            handle.canceled()
        else:
            handle.abort()
        return E(error_code=E.CANCELED, final_stage=stage,
                 message=f'the arm node was stopped during {stage}: the arm holds where it '
                         'stopped (no retreat, the hand left as it was)')

    async def execute(self, handle):
        """Run the stages; retreat with the hand open on cancel or failure."""
        self.motion_end = None
        try:
            result = await self.run_grasp(handle)
            if self.motion_end is not None:
                result.motion_end = self.motion_end.to_msg()
            return result
        except Exception as exc:  # a bug: the arm stops, the goal ends typed, the node serves on
            if self.shutting_down:  # the node is being destroyed under the goal: nothing to tell
                raise
            message = internal_error(self.get_logger(), 'arm/execute_grasp', exc)
            if handle.is_active:
                handle.abort()
            return E(error_code=E.MOTION_FAILED, final_stage='pre_grasp', message=message)
        finally:
            self.busy = False

    async def run_grasp(self, handle):
        """Check reachability, then pre_grasp -> approach -> grasp -> post_grasp."""
        goal = handle.request
        c, q = goal.contact_point.point, goal.wrist_orientation
        grasp = Pose(np.array([c.x, c.y, c.z]), np.array([q.x, q.y, q.z, q.w]) /
                     math.hypot(q.x, q.y, q.z, q.w))
        pre = pre_grasp_pose(grasp, goal.approach_distance or self.p.approach_distance)
        waypoints = [waypoint_pose(grasp, [w.position.x, w.position.y, w.position.z],
                                   [w.orientation.x, w.orientation.y, w.orientation.z,
                                    w.orientation.w]) for w in goal.post_grasp_waypoints]
        named = [('pre-grasp pose', pre), ('grasp pose', grasp)] + [
            (f'post-grasp waypoint {i}', w) for i, w in enumerate(waypoints)]
        for what, pose in named:
            reason = self.workspace.check(pose, what)
            if reason:
                handle.abort()
                return E(error_code=E.UNREACHABLE, message=f'unreachable: {reason}',
                         final_stage='pre_grasp')
        reason = self.backend.check_reachable(named)
        if reason:
            handle.abort()
            return E(error_code=E.UNREACHABLE, message=f'unreachable: {reason}',
                     final_stage='pre_grasp')
        speed = goal.max_speed
        stop = lambda: handle.is_cancel_requested or self.shutting_down  # noqa: E731
        stage, failure = 'pre_grasp', None
        rate = WallRate(self.p.feedback_rate_hz)

        def stage_move(stage, target, linear=False):
            nonlocal failure
            start = self.backend.current_pose().position
            span = max(1e-9, float(np.linalg.norm(target.position - start)))

            def step(k, pose):
                left = float(np.linalg.norm(target.position - pose.position))
                progress = max(0.0, 1.0 - left / span)
                if not rate.due(force=progress >= 1.0):
                    return
                fb = ExecuteGrasp.Feedback(stage=stage, progress=progress)
                fb.wrist_pose.position.x, fb.wrist_pose.position.y, fb.wrist_pose.position.z = \
                    (float(v) for v in pose.position)
                o = fb.wrist_pose.orientation
                o.x, o.y, o.z, o.w = (float(v) for v in pose.orientation)
                handle.publish_feedback(fb)
            handle.publish_feedback(ExecuteGrasp.Feedback(stage=stage, progress=0.0))
            try:
                return self.move_to(target, stop, step, speed, linear)
            except MotionError as exc:
                failure = (E.TIMEOUT if exc.timed_out else E.MOTION_FAILED, f'{stage}: {exc}')
                return False

        if stage_move('pre_grasp', pre):
            stage = 'approach'
            if stage_move('approach', grasp, linear=True):
                stage = 'grasp'
                handle.publish_feedback(ExecuteGrasp.Feedback(stage='grasp'))
                hand = HandGrasp.Goal(joint_names=list(goal.hand_joint_names),
                                      joint_positions=list(goal.hand_joint_positions))
                if not goal.hand_joint_names:
                    hand = HandGrasp.Goal(named_pose='closed')
                reason = await self.hand_goal(hand)
                if reason:
                    failure = (E.HAND_FAILED, reason)
                elif not stop():
                    stage = 'post_grasp'
                    for wp in waypoints:
                        if not stage_move('post_grasp', wp, linear=True):
                            break
                    else:
                        handle.succeed()
                        return E(success=True, final_stage='done',
                                 message=f'grasped and followed {len(waypoints)} waypoints')
        if self.shutting_down:  # SIGINT/SIGTERM: the arm holds where it stopped, nothing moves
            return self.end_on_shutdown(handle, stage)
        # cancelled or failed after motion began: open the hand, back off to the pre-grasp pose
        handle.publish_feedback(ExecuteGrasp.Feedback(stage='retreat'))
        opened = await self.hand_goal(HandGrasp.Goal(named_pose='open'))
        note = f'; the hand did not open: {opened}' if opened else ''
        if failure is None or stage != 'pre_grasp':  # a failed pre-grasp left nothing to back off
            try:
                self.move_to(Pose(pre.position, self.backend.current_pose().orientation),
                             linear=stage != 'pre_grasp')
            except MotionError as exc:
                note += f'; the retreat failed: {exc}'
        if failure is None:
            handle.canceled()
            return E(error_code=E.CANCELED, final_stage=stage,
                     message=f'cancelled during {stage}; retreated with the hand open{note}')
        handle.abort()
        return E(error_code=failure[0], final_stage=stage, message=failure[1] + note)


def main(args=None):
    """Run the arm node."""
    # Motions block their thread for their duration (the backend follows the trajectory in
    # real time): other threads keep answering cancel requests, arm/home and feedback.
    raise SystemExit(run_node(ArmNode, args, params=PARAMS))
