"""Scenes: which objects, where they start and how fast they go, drawn from a seed.

Like CLEVRER, every object has a distinct (color, material, shape); all have the same size. Some
objects start at rest inside the view, one may start moving inside it, the others slide in from
outside, each aimed at an object already placed (at its planned position at a chosen time) so that
collisions are common and chain into one another. Planned motion is a straight line decelerated by
floor friction; the physics engine decides what really happens, and the caller keeps a scene only
if its simulation passes `events.check_scene`'s tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tasks.clevrer_sim.camera import Camera
from tasks.questions import COLORS, MATERIALS, SHAPES

RADIUS = 0.5
"""Sphere and cylinder radius (m); cylinders are as tall as they are wide."""
CUBE_HALF_EXTENT = 0.42
"""Half the cube's edge (m), so that a cube looks about as big as a sphere."""
HALF_HEIGHT = {"cube": CUBE_HALF_EXTENT, "sphere": RADIUS, "cylinder": RADIUS}
"""Height of each shape's centre above the floor (m)."""
FOOTPRINT_RADIUS = {"cube": CUBE_HALF_EXTENT * math.sqrt(2), "sphere": RADIUS, "cylinder": RADIUS}
"""Radius of the circle holding each shape's footprint (m); keeps start positions apart."""
FRICTION_DECELERATION = 0.49
"""Deceleration of a sliding object (m/s²): friction coefficient 0.05 × g."""

LATE_MEETING_PROBABILITY = 0.9
"""Chance that the last object is aimed to meet another after the clip (predictive questions)."""
MAX_SPEED = 5.0
"""Fastest initial speed (m/s)."""
VIEW_MARGIN_PIXELS = 0.15
"""Objects placed inside the view keep this fraction of the image size from its border."""


@dataclass(frozen=True)
class ObjectState:
    """One object and its initial state."""

    object_id: int
    color: str
    material: str
    shape: str
    position: tuple[float, float]
    """Initial (x, y) of the centre on the floor (m)."""
    yaw: float
    """Initial rotation about z (rad)."""
    velocity: tuple[float, float]
    """Initial (vx, vy) (m/s)."""

    @property
    def height(self) -> float:
        return HALF_HEIGHT[self.shape]

    def position_3d(self) -> tuple[float, float, float]:
        return (self.position[0], self.position[1], self.height)


@dataclass(frozen=True)
class Scene:
    """The objects of one video, in object_id order (object_id == position in the tuple)."""

    objects: tuple[ObjectState, ...]

    def without(self, object_id: int) -> Scene:
        """The same scene with one object removed; the others keep their ids and states."""
        return Scene(tuple(o for o in self.objects if o.object_id != object_id))


def planned_position(state: ObjectState, time: float) -> np.ndarray:
    """Where an object would be at `time` (s) if it slid straight, decelerated by friction and
    nothing hit it → `[2]` (m)."""
    start = np.asarray(state.position)
    velocity = np.asarray(state.velocity)
    speed = float(np.linalg.norm(velocity))
    if speed == 0.0:
        return start
    stop_time = speed / FRICTION_DECELERATION
    t = min(time, stop_time)
    distance = speed * t - FRICTION_DECELERATION * t * t / 2
    return start + velocity / speed * distance


def sample_attributes(rng: np.random.Generator, count: int) -> list[tuple[str, str, str]]:
    """`count` distinct (color, material, shape) triples."""
    combinations = [(c, m, s) for c in COLORS for m in MATERIALS for s in SHAPES]
    chosen = rng.choice(len(combinations), size=count, replace=False)
    return [combinations[i] for i in chosen]


def _free_spot_in_view(
    rng: np.random.Generator, camera: Camera, placed: list[np.ndarray], gap: float
) -> np.ndarray | None:
    """A floor point well inside the view, at least `gap` from every placed point."""
    margin_u = VIEW_MARGIN_PIXELS * camera.width
    margin_v = VIEW_MARGIN_PIXELS * camera.height
    for _ in range(100):
        u = rng.uniform(margin_u, camera.width - margin_u)
        v = rng.uniform(margin_v, camera.height - margin_v)
        point = camera.floor_point(u, v, height=RADIUS)[:2]
        if all(np.linalg.norm(point - other) >= gap for other in placed):
            return point
    return None


def _clear_path(state: ObjectState, others: list[ObjectState], partner: int, until: float) -> bool:
    """Whether `state`'s planned path keeps clear of every other object's planned path until
    `until` (s), so that it meets its partner rather than something on the way."""
    reach = 2 * FOOTPRINT_RADIUS["cube"] + 0.3
    for time in np.arange(0.0, until, 0.1):
        here = planned_position(state, time)
        for other in others:
            if other.object_id == partner and time > until - 1.0:
                continue
            if np.linalg.norm(here - planned_position(other, time)) < reach:
                return False
    return True


def _in_view_at(camera: Camera, state: ObjectState, time: float) -> bool:
    """Whether the planned position at `time` (s) is in view."""
    return bool(camera.inside_view(np.append(planned_position(state, time), state.height)))


def _entry_start(camera: Camera, target: np.ndarray, direction: np.ndarray, height: float) -> float:
    """Distance back from `target` along -`direction` at which an object is out of view."""
    distance = 0.0
    while distance < 30.0:
        distance += 0.25
        point = np.append(target - direction * distance, height)
        if not camera.inside_view(point, margin=-2.0 * camera.width / 64):
            return distance + 2 * RADIUS
    return distance


def sample_scene(
    rng: np.random.Generator,
    camera: Camera,
    num_objects: int,
    clip_seconds: float,
    future_seconds: float,
) -> Scene | None:
    """Draw one scene of `num_objects` objects; planned meetings fall in the clip or soon after
    it (within `future_seconds`), so that some collisions are left for predictive questions.

    Returns None when the draw cannot be completed (e.g. no free spot); the caller draws again.
    """
    attributes = sample_attributes(rng, num_objects)
    num_resting = int(rng.integers(1, max(1, num_objects // 2) + 1))
    starts_moving_inside = bool(rng.random() < 0.4)
    last_meets_after_clip = bool(rng.random() < LATE_MEETING_PROBABILITY) and future_seconds > 0
    states: list[ObjectState] = []
    placed: list[np.ndarray] = []
    targeted: set[int] = set()
    gap = 2 * FOOTPRINT_RADIUS["cube"] + 0.2
    for object_id, (color, material, shape) in enumerate(attributes):
        yaw = float(rng.uniform(-math.pi, math.pi))
        if object_id < num_resting or (object_id == num_resting and starts_moving_inside):
            spot = _free_spot_in_view(rng, camera, placed, gap)
            if spot is None:
                return None
            velocity = (0.0, 0.0)
            if object_id == num_resting:
                angle = rng.uniform(-math.pi, math.pi)
                speed = rng.uniform(1.0, 2.5)
                velocity = (speed * math.cos(angle), speed * math.sin(angle))
            state = ObjectState(
                object_id, color, material, shape, (float(spot[0]), float(spot[1])), yaw, velocity
            )
        else:
            window = (0.1 * clip_seconds, clip_seconds)
            partners = states
            if object_id == num_objects - 1 and last_meets_after_clip:
                # Meet, after the clip, a resting object that nothing else aims at (if any).
                window = (clip_seconds + 0.05 * future_seconds, clip_seconds + 0.9 * future_seconds)
                partners = [s for s in states[:num_resting] if s.object_id not in targeted]
                partners = partners or states[:num_resting]
            late = window[0] > clip_seconds
            for _ in range(40 if late else 20):
                state, partner = _aimed_entry(
                    rng, camera, partners, object_id, (color, material, shape), yaw, window
                )
                if (
                    state is not None
                    and _in_view_at(camera, state, clip_seconds - 0.6)
                    and (not late or _clear_path(state, states, partner, window[0]))
                    and all(
                        np.linalg.norm(np.asarray(state.position) - other) >= gap
                        for other in placed
                    )
                ):
                    break
            else:
                return None
            targeted.add(partner)
        states.append(state)
        placed.append(np.asarray(state.position))
    return Scene(tuple(states))


def _aimed_entry(
    rng: np.random.Generator,
    camera: Camera,
    earlier: list[ObjectState],
    object_id: int,
    attributes: tuple[str, str, str],
    yaw: float,
    window: tuple[float, float],
) -> tuple[ObjectState | None, int]:
    """An object that slides in from outside the view to meet one of `earlier` at a random time
    in `window` (s), and that object's id; None if the draw needs an implausible speed."""
    color, material, shape = attributes
    height = HALF_HEIGHT[shape]
    meet_time = float(rng.uniform(*window))
    partner = earlier[int(rng.integers(len(earlier)))]
    target = planned_position(partner, meet_time)
    angle = rng.uniform(-math.pi, math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    target = target + normal * rng.uniform(-0.8, 0.8) * RADIUS
    arrival_speed = rng.uniform(0.6, 2.5)
    distance = max(
        _entry_start(camera, target, direction, height) + rng.uniform(0.0, 1.0),
        meet_time * (arrival_speed + FRICTION_DECELERATION * meet_time / 2),
    )
    # Solve distance = v0·t − a·t²/2 for v0, so the object reaches the target at meet_time.
    speed = (distance + FRICTION_DECELERATION * meet_time**2 / 2) / meet_time
    if speed > MAX_SPEED:
        return None, partner.object_id
    start = target - direction * distance
    velocity = direction * speed
    state = ObjectState(
        object_id,
        color,
        material,
        shape,
        (float(start[0]), float(start[1])),
        yaw,
        (float(velocity[0]), float(velocity[1])),
    )
    return state, partner.object_id
