"""The MuJoCo world's camera: exact pinhole intrinsics and offscreen RGB-D rendering."""

from typing import Optional, Tuple

import mujoco
import numpy as np

from deft_sim.kinematic_world import PinholeCamera


def fovy_of(camera: PinholeCamera) -> float:
    """
    Return the vertical field of view (degrees) of a pinhole camera MuJoCo can render exactly.

    MuJoCo's perspective camera has square pixels and the principal point at the image centre,
    so fx == fy, cx == (width - 1) / 2 and cy == (height - 1) / 2 (pixel-centre convention of
    PinholeCamera) are required; anything else is a ValueError.
    """
    if abs(camera.fx - camera.fy) > 1e-6 * camera.fx:
        raise ValueError(f'MuJoCo cameras have square pixels: fx={camera.fx} != fy={camera.fy}')
    if abs(camera.cx - (camera.width - 1) / 2) > 1e-3 or \
            abs(camera.cy - (camera.height - 1) / 2) > 1e-3:
        raise ValueError(f'MuJoCo cameras have a centred principal point: need cx='
                         f'{(camera.width - 1) / 2}, cy={(camera.height - 1) / 2}')
    return float(np.degrees(2.0 * np.arctan(camera.height / 2.0 / camera.fy)))


def camera_from_fovy(width: int, height: int, fovy_deg: float) -> PinholeCamera:
    """Return the true intrinsics of a MuJoCo camera: fx = fy = (height / 2) / tan(fovy / 2)."""
    f = height / 2.0 / np.tan(np.radians(fovy_deg) / 2.0)
    return PinholeCamera(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


class OffscreenRenderer:
    """
    Draws a model's camera 'rgbd' offscreen: RGB and metric depth, at the camera's size.

    Creating it creates the OpenGL context (MUJOCO_GL=egl renders offscreen on the CPU), kept for
    the renderer's life: a world that compiles a new model (another object instance) only needs
    a new MjrContext (the model's meshes and textures), not a new OpenGL context, whose first
    frame costs about 50 ms more on llvmpipe. Render from the thread that created it; call
    close() to free it.
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int):
        gl = mujoco.GLContext(width, height)
        gl.make_current()
        self._gl: Optional[mujoco.GLContext] = gl
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.empty((height, width, 3), np.uint8)
        self._depth = np.empty((height, width), np.float32)
        self._option = mujoco.MjvOption()
        self.model: Optional[mujoco.MjModel] = None
        self._context: Optional[mujoco.MjrContext] = None
        self._bind(model)

    def _bind(self, model: mujoco.MjModel) -> None:
        """Make `model` the one drawn: its MjrContext, scene and camera (context current)."""
        if self._context is not None:
            self._context.free()
            self._context = None
        context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
        context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = model.camera('rgbd').id
        self.model, self._context, self._camera = model, context, cam
        self._scene = mujoco.MjvScene(model, maxgeom=1000)

    def render(self, data: mujoco.MjData, model: Optional[mujoco.MjModel] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return (rgb uint8 H x W x 3, depth float32 H x W in metres along the optical axis).

        `model` is data's model when it is not the one drawn last (None: the same). Pixels that
        see nothing within the far plane are NaN.
        """
        if self._gl is None:
            raise RuntimeError('the renderer is closed')
        self._gl.make_current()
        if model is not None and model is not self.model:
            self._bind(model)
        mujoco.mjv_updateScene(self.model, data, self._option, None, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._rgb, self._depth, self._rect, self._context)
        return np.flipud(self._rgb).copy(), self._metric_depth(np.flipud(self._depth))

    def _metric_depth(self, buffer: np.ndarray) -> np.ndarray:
        """Convert the reversed-Z depth buffer (1 near .. 0 far) to metres along the axis."""
        extent = self.model.stat.extent
        near = np.float32(self.model.vis.map.znear * extent)
        far = np.float32(self.model.vis.map.zfar * extent)
        # glFrustum's projection, remapped to reversed Z as MuJoCo does (see mujoco.Renderer)
        c = -(far + near) / (far - near)
        d = -(np.float32(2) * far * near) / (far - near)
        c, d = np.float32(-0.5) * c - np.float32(0.5), np.float32(-0.5) * d
        z = buffer.astype(np.float64)
        with np.errstate(divide='ignore'):
            depth = d / (z + c)
        depth[(z <= 0) | (depth >= 0.999 * far)] = np.nan
        return depth.astype(np.float32)

    def close(self) -> None:
        """Free the OpenGL context (safe to call twice)."""
        if self._gl is not None:
            gl, self._gl = self._gl, None
            gl.make_current()
            if self._context is not None:
                self._context.free()
                self._context = None
            gl.free()
