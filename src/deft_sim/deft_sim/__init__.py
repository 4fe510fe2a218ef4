"""The simulated twin of the robot, hand and camera (deft_sim)."""

import os

# MuJoCo reads MUJOCO_GL when it is imported: render offscreen on the CPU (EGL, no display needed)
# unless the user chose another backend (glfw with a display, osmesa).
os.environ.setdefault('MUJOCO_GL', 'egl')
