"""Rigid-body simulation of a scene with pybullet (DIRECT mode, no GUI, no rendering).

Objects slide on a floor with friction and collide with one another; they do not tip over (their
inertia about the horizontal axes is made very large, so they only slide and spin about z, as in
CLEVRER). Each video frame is `SUBSTEPS` physics steps; after every step the contact points
between pairs of objects are read, so the contact log of a frame holds every pair that touched
at any step leading to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet

from tasks.clevrer_sim.scene import CUBE_HALF_EXTENT, RADIUS, Scene

SUBSTEPS = 10
"""Physics steps per video frame (at 25 fps: a 4 ms step)."""
OBJECT_FRICTION = 0.05
"""Friction coefficient of objects; the floor's is 1 and Bullet multiplies the two."""
OBJECT_RESTITUTION = 0.8
"""Bounciness of objects; Bullet multiplies the two, and the floor's is 0 (no bouncing on it)."""
HORIZONTAL_INERTIA = 1000.0
"""Inertia about x and y (kg·m²): large, so objects slide and spin but never tip."""
CONTACT_DISTANCE = 1e-3
"""Contact points farther apart than this (m) are ignored (Bullet reports near misses too)."""
DECIMALS = 4
"""States are rounded to this many decimals before anything reads them, so the annotation file
and the generator see the same numbers."""

Pair = tuple[int, int]


@dataclass(frozen=True)
class Trajectory:
    """Per-frame states of the simulated objects. Axes: f frames (frame 0 is the initial state),
    n objects (in `object_ids` order)."""

    object_ids: tuple[int, ...]
    """The object_id of each column."""
    positions: np.ndarray
    """Centre positions `[f,n,3]` (m)."""
    quaternions: np.ndarray
    """Orientations `[f,n,4]` as (x, y, z, w)."""
    orientations: np.ndarray
    """Orientations `[f,n,3]` as Euler angles (roll, pitch, yaw) (rad)."""
    velocities: np.ndarray
    """Linear velocities `[f,n,3]` (m/s)."""
    angular_velocities: np.ndarray
    """Angular velocities `[f,n,3]` (rad/s)."""
    contacts: tuple[dict[Pair, tuple[float, float, float]], ...]
    """Per frame: object-id pairs (smaller id first) that touched during the steps leading to
    that frame → the point (m) where they touched first in it. Frame 0 has none."""

    @property
    def num_frames(self) -> int:
        return self.positions.shape[0]

    def column(self, object_id: int) -> int:
        return self.object_ids.index(object_id)


def _collision_shape(client: int, shape: str) -> int:
    if shape == "cube":
        return pybullet.createCollisionShape(
            pybullet.GEOM_BOX, halfExtents=[CUBE_HALF_EXTENT] * 3, physicsClientId=client
        )
    if shape == "sphere":
        return pybullet.createCollisionShape(
            pybullet.GEOM_SPHERE, radius=RADIUS, physicsClientId=client
        )
    return pybullet.createCollisionShape(
        pybullet.GEOM_CYLINDER, radius=RADIUS, height=2 * RADIUS, physicsClientId=client
    )


def _vertical_inertia(shape: str) -> float:
    """Inertia about z of a 1 kg object of `shape` (kg·m²)."""
    if shape == "cube":
        return (2 * CUBE_HALF_EXTENT) ** 2 / 6
    if shape == "sphere":
        return 0.4 * RADIUS**2
    return 0.5 * RADIUS**2


def simulate(scene: Scene, num_frames: int, fps: int) -> Trajectory:
    """Simulate `scene` for `num_frames` frames (frame 0 = the initial state) at `fps`.

    A fresh physics client per call, so the result depends on nothing but the arguments.
    """
    client = pybullet.connect(pybullet.DIRECT)
    try:
        return _simulate(client, scene, num_frames, fps)
    finally:
        pybullet.disconnect(client)


def _simulate(client: int, scene: Scene, num_frames: int, fps: int) -> Trajectory:
    pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
    pybullet.setTimeStep(1.0 / (fps * SUBSTEPS), physicsClientId=client)
    pybullet.setPhysicsEngineParameter(contactBreakingThreshold=0.001, physicsClientId=client)
    floor = pybullet.createMultiBody(
        0,
        pybullet.createCollisionShape(pybullet.GEOM_PLANE, physicsClientId=client),
        physicsClientId=client,
    )
    pybullet.changeDynamics(floor, -1, lateralFriction=1.0, restitution=0.0, physicsClientId=client)
    bodies: list[int] = []
    for state in scene.objects:
        body = pybullet.createMultiBody(
            baseMass=1.0,
            baseCollisionShapeIndex=_collision_shape(client, state.shape),
            basePosition=state.position_3d(),
            baseOrientation=pybullet.getQuaternionFromEuler((0.0, 0.0, state.yaw)),
            physicsClientId=client,
        )
        pybullet.changeDynamics(
            body,
            -1,
            lateralFriction=OBJECT_FRICTION,
            restitution=OBJECT_RESTITUTION,
            rollingFriction=0.0,
            spinningFriction=0.002,
            linearDamping=0.0,
            angularDamping=0.3,
            localInertiaDiagonal=(
                HORIZONTAL_INERTIA,
                HORIZONTAL_INERTIA,
                _vertical_inertia(state.shape),
            ),
            physicsClientId=client,
        )
        pybullet.resetBaseVelocity(
            body, (*state.velocity, 0.0), (0.0, 0.0, 0.0), physicsClientId=client
        )
        bodies.append(body)
    object_of_body = {
        body: state.object_id for body, state in zip(bodies, scene.objects, strict=True)
    }

    num_objects = len(bodies)
    positions = np.zeros((num_frames, num_objects, 3))
    quaternions = np.zeros((num_frames, num_objects, 4))
    velocities = np.zeros((num_frames, num_objects, 3))
    angular_velocities = np.zeros((num_frames, num_objects, 3))
    contacts: list[dict[Pair, tuple[float, float, float]]] = []
    for frame in range(num_frames):
        touching: dict[Pair, tuple[float, float, float]] = {}
        if frame > 0:
            for _ in range(SUBSTEPS):
                pybullet.stepSimulation(physicsClientId=client)
                for point in pybullet.getContactPoints(physicsClientId=client):
                    body_a, body_b, distance = point[1], point[2], point[8]
                    if body_a == floor or body_b == floor or distance > CONTACT_DISTANCE:
                        continue
                    pair = tuple(sorted((object_of_body[body_a], object_of_body[body_b])))
                    if pair not in touching:
                        where = (np.asarray(point[5]) + np.asarray(point[6])) / 2
                        touching[pair] = tuple(float(x) for x in _rounded(where))
        contacts.append(touching)
        for column, body in enumerate(bodies):
            position, quaternion = pybullet.getBasePositionAndOrientation(
                body, physicsClientId=client
            )
            velocity, angular_velocity = pybullet.getBaseVelocity(body, physicsClientId=client)
            positions[frame, column] = position
            quaternions[frame, column] = quaternion
            velocities[frame, column] = velocity
            angular_velocities[frame, column] = angular_velocity
    orientations = np.array(
        [pybullet.getEulerFromQuaternion(q) for q in quaternions.reshape(-1, 4)]
    ).reshape(num_frames, num_objects, 3)
    return Trajectory(
        object_ids=tuple(state.object_id for state in scene.objects),
        positions=_rounded(positions),
        quaternions=quaternions,
        orientations=_rounded(orientations),
        velocities=_rounded(velocities),
        angular_velocities=_rounded(angular_velocities),
        contacts=tuple(contacts),
    )


def _rounded(values: np.ndarray) -> np.ndarray:
    """Rounded to `DECIMALS`, with -0.0 turned into 0.0."""
    return np.round(values, DECIMALS) + 0.0
