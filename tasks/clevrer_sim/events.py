"""The event log of a simulation: collisions, entering and exiting the view, motion, causes.

Definitions (the checker re-implements the same ones from the annotation file alone):
- collision: the first frame of a new contact between two objects (floor contacts are not
  events); contacts of the same pair less than `MERGE_FRAMES` frames apart are one collision.
- in / out: the first frame at which an object's centre projects inside / outside the image,
  after a frame where it did not / did; objects in view at frame 0 do not enter.
- moving: horizontal speed above `MOVING_SPEED` (m/s) in a frame where the object is in view.
- causes (CLEVRER's causal graph): an event's parents are, for each object taking part in it,
  that object's previous event; ancestors are parents, their parents, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tasks.clevrer_sim.camera import Camera
from tasks.clevrer_sim.physics import Trajectory

MERGE_FRAMES = 4
"""Contacts of one pair within this many frames of the last one belong to the same collision."""
MOVING_SPEED = 0.2
"""Speed (m/s) above which an object counts as moving."""
MIN_VISIBLE_FRAMES = 8
"""A scene is kept only if every object is in view for at least this many frames of the clip."""
KIND_ORDER = {"start": 0, "in": 1, "collision": 2, "out": 3, "end": 4}


@dataclass(frozen=True, order=True)
class Event:
    """One event. Ordered by frame, then kind, then objects."""

    frame: int
    kind_rank: int = field(repr=False)
    kind: str
    objects: tuple[int, ...]
    """Participating object ids, ascending (one for in/out, two for a collision)."""
    location: tuple[float, float, float] | None = field(default=None, compare=False)
    """Where a collision happened (m); None for other kinds."""

    @classmethod
    def make(
        cls,
        kind: str,
        frame: int,
        objects: tuple[int, ...],
        location: tuple[float, float, float] | None = None,
    ) -> Event:
        return cls(frame, KIND_ORDER[kind], kind, tuple(sorted(objects)), location)


def collisions_from_contacts(
    contacts: tuple[dict[tuple[int, int], tuple[float, float, float]], ...],
) -> list[Event]:
    """Collision events from a per-frame contact log (see `physics.Trajectory.contacts`)."""
    last_touch: dict[tuple[int, int], int] = {}
    events = []
    for frame, touching in enumerate(contacts):
        for pair, location in sorted(touching.items()):
            previous = last_touch.get(pair)
            if previous is None or frame - previous > MERGE_FRAMES:
                events.append(Event.make("collision", frame, pair, location))
            last_touch[pair] = frame
    return sorted(events)


def entries_and_exits(inside: np.ndarray, object_ids: tuple[int, ...]) -> list[Event]:
    """In/out events from in-view flags `[f,n]` (bool)."""
    events = []
    for column, object_id in enumerate(object_ids):
        flags = inside[:, column]
        for frame in range(1, len(flags)):
            if flags[frame] and not flags[frame - 1]:
                events.append(Event.make("in", frame, (object_id,)))
            elif flags[frame - 1] and not flags[frame]:
                events.append(Event.make("out", frame, (object_id,)))
    return sorted(events)


@dataclass(frozen=True)
class EventLog:
    """What happened in one video. Axes: f clip frames, n objects (object_id order)."""

    num_frames: int
    """Frames in the clip."""
    inside: np.ndarray
    """Whether each object's centre is in view `[f,n]` (bool)."""
    speeds: np.ndarray
    """Horizontal speed `[f,n]` (m/s)."""
    events: tuple[Event, ...]
    """Events in the clip (in, out, collision), sorted."""
    unseen_collisions: tuple[Event, ...]
    """Collisions after the clip (frame >= num_frames), sorted."""

    @property
    def moving(self) -> np.ndarray:
        """Whether each object is in view and moving `[f,n]` (bool)."""
        return self.inside & (self.speeds > MOVING_SPEED)

    @property
    def stationary(self) -> np.ndarray:
        """Whether each object is in view and not moving `[f,n]` (bool)."""
        return self.inside & (self.speeds <= MOVING_SPEED)

    @property
    def collisions(self) -> list[Event]:
        return [e for e in self.events if e.kind == "collision"]

    def of_kind(self, kind: str, object_id: int | None = None) -> list[Event]:
        """Clip events of `kind`, optionally only those `object_id` takes part in."""
        return [
            e
            for e in self.events
            if e.kind == kind and (object_id is None or object_id in e.objects)
        ]

    def collision_between(self, a: int, b: int) -> Event | None:
        for event in self.events:
            if event.kind == "collision" and event.objects == tuple(sorted((a, b))):
                return event
        return None

    def trace(self, object_id: int) -> list[Event]:
        """Clip events `object_id` takes part in, in time order."""
        return [e for e in self.events if object_id in e.objects]

    def ancestors(self, event: Event) -> set[Event]:
        """Causal ancestors of a clip event (not the event itself)."""
        found: set[Event] = set()
        frontier = [event]
        while frontier:
            current = frontier.pop()
            for object_id in current.objects:
                trace = self.trace(object_id)
                position = trace.index(current)
                if position > 0 and trace[position - 1] not in found:
                    found.add(trace[position - 1])
                    frontier.append(trace[position - 1])
        return found


def build_event_log(trajectory: Trajectory, camera: Camera, num_frames: int) -> EventLog:
    """The event log of the first `num_frames` frames of `trajectory`, plus the collisions that
    happen in the rest of it (the unseen future)."""
    inside = camera.inside_view(trajectory.positions[:num_frames])
    speeds = np.linalg.norm(trajectory.velocities[:num_frames, :, :2], axis=-1)
    collisions = collisions_from_contacts(trajectory.contacts)
    clip_events = [e for e in collisions if e.frame < num_frames]
    clip_events += entries_and_exits(inside, trajectory.object_ids)
    return EventLog(
        num_frames=num_frames,
        inside=inside,
        speeds=speeds,
        events=tuple(sorted(clip_events)),
        unseen_collisions=tuple(e for e in collisions if e.frame >= num_frames),
    )


def counterfactual_collisions(trajectory: Trajectory, num_frames: int) -> list[Event]:
    """Collisions within the clip's frames of a re-simulation (object ids as in the original)."""
    return [e for e in collisions_from_contacts(trajectory.contacts) if e.frame < num_frames]


def scene_problem(trajectory: Trajectory, log: EventLog, camera: Camera) -> str | None:
    """Why a simulated scene is unfit for questions, or None if it is fit.

    Kept scenes have: every object in view for `MIN_VISIBLE_FRAMES`; at least one collision in
    the clip, each in view; no pair colliding twice (as CLEVRER); no object in two events at the
    same frame (so time order is never ambiguous); objects upright on the floor.
    """
    visible_frames = log.inside.sum(axis=0)
    if visible_frames.min() < MIN_VISIBLE_FRAMES:
        return "an object is hardly ever in view"
    collisions = collisions_from_contacts(trajectory.contacts)
    if not any(e.frame < log.num_frames for e in collisions):
        return "no collision in the clip"
    pairs = [e.objects for e in collisions]
    if len(pairs) != len(set(pairs)):
        return "a pair collides twice"
    for event in collisions:
        if event.frame < log.num_frames and not camera.inside_view(np.asarray(event.location)):
            return "a collision out of view"
    frames_of_object: dict[int, list[int]] = {}
    for event in list(log.events) + list(log.unseen_collisions):
        for object_id in event.objects:
            frames_of_object.setdefault(object_id, []).append(event.frame)
    for frames in frames_of_object.values():
        if len(frames) != len(set(frames)):
            return "an object takes part in two events at one frame"
    heights = trajectory.positions[:, :, 2]
    if np.abs(heights - heights[0]).max() > 0.05:
        return "an object left the floor"
    if np.abs(trajectory.orientations[:, :, :2]).max() > 0.1:
        return "an object tipped"
    return None
