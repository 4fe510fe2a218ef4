"""Arm control node: execute a grasp (pre-grasp, approach, grasp, post-grasp trajectory)."""
