"""Frames and per-pixel instance masks, from pybullet's CPU renderer (ER_TINY_RENDERER).

Colours are CLEVR's. Rubber objects are flat-coloured; metal objects carry a texture of bright,
reflection-like diagonal bands over a darker shade of their colour, which the renderer's shading
keeps visible at 64×64 (per-object specular colour barely shows in this renderer). No shadows:
the renderer's shadow map draws a wrong bright wedge on the floor.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pybullet
from PIL import Image

from tasks.clevrer_sim.camera import Camera
from tasks.clevrer_sim.physics import Trajectory
from tasks.clevrer_sim.scene import CUBE_HALF_EXTENT, RADIUS, Scene
from tasks.questions import COLORS, MATERIALS

COLOR_RGB = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "cyan": (41, 208, 208),
    "purple": (129, 38, 192),
    "yellow": (255, 238, 51),
}
"""CLEVR's object colours (0–255 RGB)."""
FLOOR_GRAY = 170
TEXTURE_SIZE = 64
LIGHT = dict(
    lightDirection=(-2.0, -3.0, 6.0),
    lightColor=(1.0, 1.0, 1.0),
    lightAmbientCoeff=0.6,
    lightDiffuseCoeff=0.5,
    lightSpecularCoeff=0.1,
    shadow=0,
)
NO_OBJECT = -1
"""Instance-mask value of pixels that show no object."""


def material_texture(rgb: tuple[int, int, int], material: str) -> np.ndarray:
    """The texture image `[s,s,3]` (uint8) of an object of colour `rgb` and `material`."""
    base = np.asarray(rgb, dtype=np.float64) / 255
    if material == "rubber":
        image = np.broadcast_to(base, (TEXTURE_SIZE, TEXTURE_SIZE, 3))
    else:
        u = np.linspace(0, 1, TEXTURE_SIZE)[None, :, None]
        v = np.linspace(0, 1, TEXTURE_SIZE)[:, None, None]
        phase = (2 * (u + v)) % 1.0
        shade = 0.4 + 1.0 * np.exp(-(((phase - 0.5) / 0.12) ** 2))
        white = 0.8 * np.exp(-(((phase - 0.5) / 0.05) ** 2))
        image = base * shade * (1 - white) + white
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


@cache
def _texture_files() -> dict[tuple[str, str], str]:
    """PNG files of every (color, material) texture and of the floor, written once a process
    (pybullet loads textures from files only)."""
    folder = Path(tempfile.mkdtemp(prefix="clevrer_sim_textures_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    files = {}
    for color in COLORS:
        for material in MATERIALS:
            path = folder / f"{color}_{material}.png"
            Image.fromarray(material_texture(COLOR_RGB[color], material)).save(path)
            files[color, material] = str(path)
    floor = folder / "floor.png"
    Image.fromarray(np.full((4, 4, 3), FLOOR_GRAY, dtype=np.uint8)).save(floor)
    files["floor", "floor"] = str(floor)
    return files


def _visual_shape(client: int, shape: str) -> int:
    if shape == "cube":
        return pybullet.createVisualShape(
            pybullet.GEOM_BOX, halfExtents=[CUBE_HALF_EXTENT] * 3, physicsClientId=client
        )
    if shape == "sphere":
        return pybullet.createVisualShape(
            pybullet.GEOM_SPHERE, radius=RADIUS, physicsClientId=client
        )
    return pybullet.createVisualShape(
        pybullet.GEOM_CYLINDER, radius=RADIUS, length=2 * RADIUS, physicsClientId=client
    )


class Renderer:
    """Renders one scene at given object poses. Use as a context manager (it owns a pybullet
    client with visual-only bodies)."""

    def __init__(self, camera: Camera, scene: Scene) -> None:
        self.camera = camera
        self.client = pybullet.connect(pybullet.DIRECT)
        textures = _texture_files()
        floor = pybullet.createMultiBody(
            0,
            baseVisualShapeIndex=pybullet.createVisualShape(
                pybullet.GEOM_BOX, halfExtents=[40, 40, 0.05], physicsClientId=self.client
            ),
            basePosition=(0, 0, -0.05),
            physicsClientId=self.client,
        )
        self._paint(floor, textures["floor", "floor"])
        self.bodies = []
        largest_id = floor
        for state in scene.objects:
            body = pybullet.createMultiBody(
                0,
                baseVisualShapeIndex=_visual_shape(self.client, state.shape),
                basePosition=state.position_3d(),
                physicsClientId=self.client,
            )
            self._paint(body, textures[state.color, state.material])
            self.bodies.append(body)
            largest_id = max(largest_id, body)
        self.object_of_body = np.full(largest_id + 2, NO_OBJECT, dtype=np.int16)
        for body, state in zip(self.bodies, scene.objects, strict=True):
            self.object_of_body[body] = state.object_id

    def _paint(self, body: int, texture_file: str) -> None:
        texture = pybullet.loadTexture(texture_file, physicsClientId=self.client)
        pybullet.changeVisualShape(
            body, -1, textureUniqueId=texture, rgbaColor=(1, 1, 1, 1), physicsClientId=self.client
        )

    def render(
        self, positions: np.ndarray, quaternions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render with objects at `positions` `[n,3]` and `quaternions` `[n,4]` (x, y, z, w).

        Returns the frame `[h,w,3]` (uint8) and the instance mask `[h,w]` (int16): the object_id
        seen at each pixel, `NO_OBJECT` for floor and sky.
        """
        for body, position, quaternion in zip(self.bodies, positions, quaternions, strict=True):
            pybullet.resetBasePositionAndOrientation(
                body, position.tolist(), quaternion.tolist(), physicsClientId=self.client
            )
        view, projection = self.camera.gl_matrices()
        _, _, rgba, _, segmentation = pybullet.getCameraImage(
            self.camera.width,
            self.camera.height,
            view,
            projection,
            renderer=pybullet.ER_TINY_RENDERER,
            physicsClientId=self.client,
            **LIGHT,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(self.camera.height, self.camera.width, 4)
        segmentation = np.asarray(segmentation, dtype=np.int64).reshape(rgba.shape[:2])
        # -1 (nothing) indexes the last entry, which is NO_OBJECT.
        instance = self.object_of_body[segmentation]
        return np.ascontiguousarray(rgba[..., :3]), instance

    def close(self) -> None:
        pybullet.disconnect(self.client)

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def render_video(
    camera: Camera, scene: Scene, trajectory: Trajectory, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first `num_frames` frames of a simulation → frames `[t,h,w,3]` (uint8) and instance
    masks `[t,h,w]` (int16, object_id or `NO_OBJECT`)."""
    frames = np.empty((num_frames, camera.height, camera.width, 3), dtype=np.uint8)
    masks = np.empty((num_frames, camera.height, camera.width), dtype=np.int16)
    with Renderer(camera, scene) as renderer:
        for frame in range(num_frames):
            frames[frame], masks[frame] = renderer.render(
                trajectory.positions[frame], trajectory.quaternions[frame]
            )
    return frames, masks
