"""The camera: a pinhole looking down at the floor at an angle, as in CLEVRER.

World axes: x to the right of the image, y away from the camera, z up; the floor is z = 0; lengths
in metres. Pixel coordinates: u to the right, v down, pixel (0, 0) covers [0,1)×[0,1).
The matrices are OpenGL-style (column-major when flattened), as pybullet's renderer takes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A look-at pinhole camera with a vertical field of view."""

    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""
    eye: tuple[float, float, float] = (0.0, -5.0, 6.2)
    """Camera position (m)."""
    target: tuple[float, float, float] = (0.0, 0.5, 0.0)
    """Point the camera looks at (m)."""
    fov_degrees: float = 40.0
    """Vertical field of view."""
    near: float = 0.1
    far: float = 40.0

    @cached_property
    def view_matrix(self) -> np.ndarray:
        """World → camera `[4,4]` (gluLookAt with z up)."""
        eye = np.asarray(self.eye, dtype=np.float64)
        forward = np.asarray(self.target, dtype=np.float64) - eye
        forward /= np.linalg.norm(forward)
        side = np.cross(forward, (0.0, 0.0, 1.0))
        side /= np.linalg.norm(side)
        up = np.cross(side, forward)
        view = np.eye(4)
        view[0, :3], view[1, :3], view[2, :3] = side, up, -forward
        view[:3, 3] = -view[:3, :3] @ eye
        return view

    @cached_property
    def projection_matrix(self) -> np.ndarray:
        """Camera → clip space `[4,4]` (gluPerspective)."""
        focal = 1.0 / math.tan(math.radians(self.fov_degrees) / 2)
        aspect = self.width / self.height
        near, far = self.near, self.far
        projection = np.zeros((4, 4))
        projection[0, 0] = focal / aspect
        projection[1, 1] = focal
        projection[2, 2] = (far + near) / (near - far)
        projection[2, 3] = 2 * far * near / (near - far)
        projection[3, 2] = -1.0
        return projection

    def gl_matrices(self) -> tuple[list[float], list[float]]:
        """(view, projection) flattened column-major, for `pybullet.getCameraImage`."""
        return (
            self.view_matrix.T.reshape(-1).tolist(),
            self.projection_matrix.T.reshape(-1).tolist(),
        )

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points `[..., 3]` → pixel coordinates `[..., 2]` (u right, v down)."""
        points = np.asarray(points, dtype=np.float64)
        homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
        clip = homogeneous @ (self.projection_matrix @ self.view_matrix).T
        ndc = clip[..., :2] / clip[..., 3:4]
        u = (ndc[..., 0] + 1) / 2 * self.width
        v = (1 - ndc[..., 1]) / 2 * self.height
        return np.stack([u, v], axis=-1)

    def inside_view(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether each world point `[..., 3]` projects into the image, `margin` pixels in from
        the border (negative: that far outside counts too). Returns bool `[...]`."""
        pixels = self.project(points)
        u, v = pixels[..., 0], pixels[..., 1]
        return (
            (u >= margin) & (u < self.width - margin) & (v >= margin) & (v < self.height - margin)
        )

    def floor_point(self, u: float, v: float, height: float = 0.0) -> np.ndarray:
        """The point at z = `height` seen at pixel coordinates (u, v) → `[3]`."""
        ndc = np.array([2 * u / self.width - 1, 1 - 2 * v / self.height])
        inverse = np.linalg.inv(self.projection_matrix @ self.view_matrix)
        near = inverse @ np.array([ndc[0], ndc[1], -1.0, 1.0])
        far = inverse @ np.array([ndc[0], ndc[1], 1.0, 1.0])
        near, far = near[:3] / near[3], far[:3] / far[3]
        t = (height - near[2]) / (far[2] - near[2])
        return near + t * (far - near)
