"""
The `depth` segmenter: weight-free tabletop segmentation from the depth image alone.

The sam backend builds its salient-object proposals on it too.
"""

import numpy as np
from scipy import ndimage

from deft_perception.geometry import CameraModel
from deft_perception.segmenter import SegmentationError, Segmenter


class DepthPlaneSegmenter(Segmenter):
    """
    Weight-free tabletop segmentation (`depth`).

    Fits the dominant support plane to the back-projected depth with RANSAC, keeps the pixels
    more than `min_height` and less than `max_height` above it on the camera's side (what floats
    higher, such as the robot's hand waiting above the table, is not an object on it), labels
    4-connected components, drops those under `min_area` pixels, and picks one by the prompt.

    A static camera sees the same table in every frame: with `reuse_plane` the last plane is
    kept while it still explains the frame (its inlier fraction among the sampled points at
    least `refit_ratio` times the fraction it had when it was fitted) and refitted otherwise (the
    camera moved, or something covers the table).
    """

    def __init__(self, min_height=0.01, min_area=150, iterations=200, inlier_distance=0.01,
                 seed=0, stride=4, max_height=0.25, reuse_plane=True, refit_ratio=0.9):
        if not 0 <= min_height < max_height:
            raise ValueError(f'need 0 <= min_height ({min_height}) < max_height ({max_height})')
        if not 0 < refit_ratio <= 1:
            raise ValueError(f'refit_ratio must be in (0, 1], got {refit_ratio}')
        self.min_height, self.max_height, self.min_area = min_height, max_height, min_area
        self.iterations, self.inlier_distance = iterations, inlier_distance
        self.seed, self.stride = seed, stride
        self.reuse_plane, self.refit_ratio = reuse_plane, refit_ratio
        self.plane = None  # (n, d, inlier fraction when fitted) of the last fit
        self.fits = 0  # RANSAC fits so far (the rest of the frames reused the plane)

    def support_plane(self, points: np.ndarray):
        """Return the plane (n, d) of these points: the last one if it still holds, else fit."""
        if self.reuse_plane and self.plane is not None:
            n, d, fitted = self.plane
            if np.mean(np.abs(points @ n + d) < self.inlier_distance) >= \
                    self.refit_ratio * fitted:
                return n, d
        n, d = self.fit_plane(points)
        self.fits += 1
        self.plane = (n, d, float(np.mean(np.abs(points @ n + d) < self.inlier_distance)))
        return n, d

    def fit_plane(self, points: np.ndarray):
        """RANSAC plane (n, d) with n . p + d = 0 and n pointing towards the camera."""
        rng = np.random.default_rng(self.seed)
        best, best_count = None, -1
        for _ in range(self.iterations):
            a, b, c = points[rng.choice(len(points), 3, replace=False)]
            n = np.cross(b - a, c - a)
            norm = np.linalg.norm(n)
            if norm < 1e-9:
                continue
            n /= norm
            d = -float(n @ a)
            count = int(np.sum(np.abs(points @ n + d) < self.inlier_distance))
            if count > best_count:
                best, best_count = (n, d), count
        if best is None:
            raise SegmentationError('no support plane found in the depth image')
        n, d = best
        inliers = points[np.abs(points @ n + d) < self.inlier_distance]
        centroid = inliers.mean(axis=0)
        _, _, vt = np.linalg.svd(inliers - centroid, full_matrices=False)
        n = vt[2]
        d = -float(n @ centroid)
        if d < 0:  # the camera (origin) on the positive side
            n, d = -n, -d
        return n, d

    def components(self, depth: np.ndarray, camera: CameraModel):
        """Return the labels (0: none) of the things standing on the support plane."""
        valid = np.isfinite(depth) & (depth > 0)
        if valid.sum() < 100:
            raise SegmentationError('too little valid depth to find the table')
        sample = np.zeros_like(valid)
        sample[::self.stride, ::self.stride] = True
        if np.count_nonzero(valid & sample) < 3:  # valid depth only between the sample grid
            sample = valid
        pts, _ = camera.backproject(valid & sample, depth)
        n, d = self.support_plane(pts)
        v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]]
        z = np.where(valid, depth, np.nan)
        xyz = np.stack([(u - camera.cx) * z / camera.fx, (v - camera.cy) * z / camera.fy, z], -1)
        height = xyz @ n + d
        above = valid & (height > self.min_height) & (height < self.max_height)
        labels, count = ndimage.label(above)
        if count:  # one pass over the image, however many specks the depth noise makes
            sizes = ndimage.sum(above, labels, index=np.arange(1, count + 1))
            keep = np.concatenate([[False], sizes >= self.min_area])
            labels[~keep[labels]] = 0
        return labels

    def segment(self, rgb, depth, camera, prompt):
        """Return the component the prompt picks."""
        if prompt.kind == 'label':
            raise SegmentationError('text prompts need a text-ranking backend; the depth backend '
                                    'takes "", "point: u, v" or "box: u0, v0, u1, v1"')
        labels = self.components(depth, camera)
        ids = [i for i in np.unique(labels) if i]
        if not ids:
            raise SegmentationError('nothing stands on the support plane')
        h, w = depth.shape
        if prompt.kind == 'point':
            u, v = (int(round(x)) for x in prompt.point)
            u, v = min(u, w - 1), min(v, h - 1)
            if labels[v, u]:
                return labels == labels[v, u]
            vv, uu = np.nonzero(labels)
            dist = np.hypot(uu - u, vv - v)
            if dist.min() > 20:
                raise SegmentationError(f'no object at or within 20 px of ({u}, {v})')
            return labels == labels[vv[dist.argmin()], uu[dist.argmin()]]
        if prompt.kind == 'box':
            u0, v0, u1, v1 = (int(round(x)) for x in prompt.box)
            inside = labels[v0:v1, u0:u1]
            counts = [(np.sum(inside == i), i) for i in ids]
            best = max(counts)
            if best[0] == 0:
                raise SegmentationError('no object inside the box')
            return labels == best[1]
        sizes = [(np.sum(labels == i), i) for i in ids]
        biggest = max(s for s, _ in sizes)
        tied = [i for s, i in sizes if s == biggest]

        def centre_distance(i):
            vv, uu = np.nonzero(labels == i)
            return np.hypot(uu.mean() - w / 2, vv.mean() - h / 2)

        return labels == min(tied, key=centre_distance)
