"""Simulated tabletop world standing in for the robot, the hand and the RGB-D camera."""
