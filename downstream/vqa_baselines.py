"""The reasoner's baselines, trained by the same script on the same questions.

- question-only: the reasoner reads no slots (`data.inputs=none`: built with `use_slots=False`);
- shuffled slots: every video reads the slots of another video, a fixed derangement of the
  split's videos (`DerangedFeatures`): what the question alone plus slot statistics give;
- object states: ground truth from the annotations as "slots" (`object_state_features`), an
  upper bound on what slots can tell the reasoner. Per frame per object, in object_id order (so
  an object keeps its index over time, as a SmoothSA slot does), 20 channels: one-hot colour (8),
  shape (3) and material (2), location x y z (3), velocity (3), inside_camera_view (1); objects
  padded with zeros to `max_objects`, the padding marked absent (no token attends to it).

Axis legend: t frames, n objects, d channels.
"""

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from downstream.video_features import ArrayFeatures, VideoFeatures, uniform_frame_indices
from tasks.bad_input import BadInputError, read_json
from tasks.questions import COLORS, MATERIALS, SHAPES

OBJECT_STATE_DIM = len(COLORS) + len(SHAPES) + len(MATERIALS) + 3 + 3 + 1


def derangement(videos: np.ndarray, seed: int) -> dict[int, int]:
    """{video: other video}, a permutation of `videos` that moves every one (a random order,
    each video mapped to the next in it), fixed by `seed`."""
    if len(videos) < 2:
        raise BadInputError(f"shuffling slots across videos needs 2 videos, got {len(videos)}")
    order = np.random.default_rng(seed).permutation(np.asarray(videos, dtype=np.int64))
    return {int(video): int(other) for video, other in zip(order, np.roll(order, -1),
                                                           strict=True)}


class DerangedFeatures:
    """The features of `base`, each video reading another video's (`derangement`)."""

    def __init__(self, base: VideoFeatures, seed: int):
        self.base = base
        self.num_slots, self.feature_dim = base.num_slots, base.feature_dim
        self.mapping = derangement(base.videos(), seed)
        self.counts = dict(zip(base.videos().tolist(), base.frame_counts().tolist(),
                               strict=True))

    def videos(self) -> np.ndarray:
        return self.base.videos()

    def frame_counts(self) -> np.ndarray:
        return np.asarray([self.counts[self.mapping[int(video)]] for video in self.videos()],
                          dtype=np.int64)

    def __call__(self, video_index: int) -> np.ndarray:
        if video_index not in self.mapping:
            raise BadInputError(f"video {video_index} has no slots to shuffle")
        return self.base(self.mapping[video_index])

    def present_slots(self, video_index: int) -> np.ndarray:
        return self.base.present_slots(self.mapping[video_index])


def object_state_features(annotations: Mapping[int, Path], max_objects: int,
                          num_frames: int) -> ArrayFeatures:
    """`[num_frames, max_objects, OBJECT_STATE_DIM]` ground-truth states of every annotated
    video, at `num_frames` frames spread evenly over the annotation's frames."""
    if not annotations:
        raise BadInputError("no annotation files: the object-state baseline needs annotations "
                            "(the test split has none)")
    states, present = {}, {}
    for video_index, path in annotations.items():
        annotation = read_json(path)
        states[video_index] = object_states(annotation, max_objects, num_frames, str(path))
        present[video_index] = np.arange(max_objects) < len(annotation["object_property"])
    return ArrayFeatures(states, name="object states", present=present)


def object_states(annotation: dict, max_objects: int, num_frames: int,
                  where: str) -> np.ndarray:
    """`[num_frames, max_objects, OBJECT_STATE_DIM]` float32 from one annotation (a dict as in
    `annotation_NNNNN.json`); `where` names it in errors."""
    properties = _field(annotation, "object_property", list, where)
    trajectory = _field(annotation, "motion_trajectory", list, where)
    if len(properties) > max_objects:
        raise BadInputError(f"{where}: {len(properties)} objects, more than max_objects "
                            f"{max_objects}")
    attributes = {}
    for item in properties:
        object_id = _field(item, "object_id", int, f"{where} object_property")
        attributes[object_id] = np.concatenate([
            _one_hot(item, "color", COLORS, where), _one_hot(item, "shape", SHAPES, where),
            _one_hot(item, "material", MATERIALS, where),
        ])
    slot_of = {object_id: slot for slot, object_id in enumerate(sorted(attributes))}
    states = np.zeros((num_frames, max_objects, OBJECT_STATE_DIM), dtype=np.float32)
    for row, frame in enumerate(uniform_frame_indices(len(trajectory), num_frames)):
        at = f"{where} motion_trajectory[{frame}]"
        for item in _field(trajectory[frame], "objects", list, at):
            object_id = _field(item, "object_id", int, at)
            if object_id not in slot_of:
                raise BadInputError(f"{at}: object_id {object_id} is not in object_property")
            states[row, slot_of[object_id]] = np.concatenate([
                attributes[object_id], _vector(item, "location", at),
                _vector(item, "velocity", at),
                [float(_field(item, "inside_camera_view", bool, at))],
            ])
    return states


def _one_hot(item: dict, name: str, values: tuple[str, ...], where: str) -> np.ndarray:
    value = _field(item, name, str, f"{where} object_property")
    if value not in values:
        raise BadInputError(f"{where}: object_property {name} {value!r} is not one of {values}")
    return np.eye(len(values), dtype=np.float32)[values.index(value)]


def _vector(item: dict, name: str, where: str) -> list[float]:
    value = _field(item, name, list, where)
    if len(value) != 3 or not all(isinstance(x, (int, float)) for x in value):
        raise BadInputError(f"{where}: {name} must be 3 numbers, got {value!r}")
    return [float(x) for x in value]


def _field(item: object, name: str, kind: type, where: str):
    if not isinstance(item, dict) or name not in item:
        raise BadInputError(f"{where}: missing field {name!r}")
    if not isinstance(item[name], kind):
        raise BadInputError(f"{where}: field {name!r} must be {kind.__name__}, got "
                            f"{type(item[name]).__name__}")
    return item[name]
