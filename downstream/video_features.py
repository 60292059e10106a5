"""What a head reads of each video: per-frame features `[t,n,d]`, by video index.

Axis legend: t frames, n slots (or objects), d channels, H W pixels.

Sources: a slot dataset (`tasks/slots.py`, memory-mapped: only the rows read are resident), or
arrays in memory: slots encoded on the fly by a frozen SmoothSA encoder (small data and demos),
or ground-truth object states (`downstream/vqa_baselines.py`). Every source returns float32,
and says which slots of a video take part (`present_slots`): all of them, except a rollout's
removed slot (its `removed_slot` column, see `downstream/rollout_dataset.py`) and padding.
"""

from collections.abc import Mapping
from typing import Protocol

import datasets
import numpy as np
import pyarrow.compute as pc
import torch
from tqdm.auto import tqdm

from downstream.slot_encoding import EncodingOptions, encode_videos, video_noise
from ocl.modeling import SmoothSAModel
from tasks.arrow_arrays import array_rows
from tasks.bad_input import BadInputError
from tasks.slots import slot_spec


class VideoFeatures(Protocol):
    """Per-frame features of a set of videos."""

    num_slots: int  # n
    feature_dim: int  # d

    def videos(self) -> np.ndarray:
        """`[v]` int64, the video indices held."""

    def frame_counts(self) -> np.ndarray:
        """`[v]` int64, frames t of each video, in the order of `videos()`."""

    def __call__(self, video_index: int) -> np.ndarray:
        """`[t,n,d]` float32 features of one video."""

    def present_slots(self, video_index: int) -> np.ndarray:
        """`[n]` bool: the slots of the video that take part (False: padding, removed)."""


REMOVED_SLOT_COLUMN = "removed_slot"  # a rollout dataset's slot left out, -1 for none
OBSERVED_FRAMES_COLUMN = "observed_frames"  # a rollout dataset's frames before the predicted ones


class SlotDatasetFeatures:
    """The slots of a slot dataset (one row per video)."""

    def __init__(self, slots: datasets.Dataset, name: str = "slot dataset"):
        spec = slot_spec(slots.features)
        self.num_slots, self.feature_dim = spec.num_slots, spec.slot_dim
        self.name = name
        self.table = slots.with_format("arrow")
        self.video_indices = np.asarray(self.table["video_index"].to_numpy(), dtype=np.int64)
        unique, counts = np.unique(self.video_indices, return_counts=True)
        if (counts > 1).any():
            raise BadInputError(f"{name} holds videos {unique[counts > 1][:5].tolist()} more "
                                "than once")
        self.rows = {int(video): row for row, video in enumerate(self.video_indices)}
        self.removed = None
        if REMOVED_SLOT_COLUMN in slots.features:
            self.removed = np.asarray(self.table[REMOVED_SLOT_COLUMN].to_numpy(), dtype=np.int64)
        self.observed = None
        if OBSERVED_FRAMES_COLUMN in slots.features:
            self.observed = np.asarray(self.table[OBSERVED_FRAMES_COLUMN].to_numpy(),
                                       dtype=np.int64)

    def videos(self) -> np.ndarray:
        return self.video_indices

    def frame_counts(self) -> np.ndarray:
        column = self.table["slots"]
        return np.concatenate([pc.list_value_length(chunk.storage).to_numpy()
                               for chunk in column.chunks]).astype(np.int64)

    def __call__(self, video_index: int) -> np.ndarray:
        if video_index not in self.rows:
            raise BadInputError(f"video {video_index} has no slots in the {self.name}")
        row = self.rows[video_index]
        return array_rows(self.table[row:row + 1]["slots"])[0].astype(np.float32)

    def observed_frame_counts(self) -> np.ndarray | None:
        """`[v]` int64, a rollout's observed frames per video (in the order of `videos()`; the
        rest are predicted), or None for slots that are all observed."""
        return self.observed

    def present_slots(self, video_index: int) -> np.ndarray:
        present = np.ones(self.num_slots, dtype=bool)
        if self.removed is not None and self.removed[self.rows[video_index]] >= 0:
            present[self.removed[self.rows[video_index]]] = False
        return present


class ArrayFeatures:
    """Features held in memory, `{video_index: [t,n,d]}`, and optionally which slots of each
    video take part, `{video_index: [n] bool}` (default: all)."""

    def __init__(self, arrays: Mapping[int, np.ndarray], name: str = "features",
                 present: Mapping[int, np.ndarray] | None = None):
        if not arrays:
            raise BadInputError(f"no videos in the {name}")
        shapes = {array.shape[1:] for array in arrays.values()}
        if len(shapes) != 1 or any(array.ndim != 3 for array in arrays.values()):
            raise BadInputError(f"{name}: every video needs [t,n,d] of the same n, d; got "
                                f"{sorted(shapes)}")
        self.arrays = {int(video): np.asarray(array, dtype=np.float32)
                       for video, array in arrays.items()}
        self.num_slots, self.feature_dim = shapes.pop()
        self.name = name
        self.present = {int(video): np.asarray(mask, dtype=bool)
                        for video, mask in (present or {}).items()}

    def videos(self) -> np.ndarray:
        return np.asarray(list(self.arrays), dtype=np.int64)

    def frame_counts(self) -> np.ndarray:
        return np.asarray([len(array) for array in self.arrays.values()], dtype=np.int64)

    def __call__(self, video_index: int) -> np.ndarray:
        if video_index not in self.arrays:
            raise BadInputError(f"video {video_index} is not in the {self.name}")
        return self.arrays[video_index]

    def present_slots(self, video_index: int) -> np.ndarray:
        return self.present.get(video_index, np.ones(self.num_slots, dtype=bool))


def uniform_frame_indices(available: int, wanted: int) -> np.ndarray:
    """`wanted` frame indices spread evenly over `available` frames, the first and the last
    always in: round(linspace(0, available - 1, wanted))."""
    if wanted < 1 or available < wanted:
        raise ValueError(f"cannot sample {wanted} distinct frames from {available}")
    return np.round(np.linspace(0, available - 1, wanted)).astype(np.int64)


def encode_on_the_fly(encoder: SmoothSAModel, videos: datasets.Dataset,
                      seed: int = 0) -> ArrayFeatures:
    """Slots of every video of a CLEVRER video dataset (`tasks.clevrer.load_clevrer_videos`,
    frames `[t,3,H,W]` uint8 at the encoder's image size) by a frozen encoder
    (`downstream.slot_encoding.load_frozen_encoder`), encoded as `downstream/extract.py`
    encodes them: the same preheater noise for (seed, video), so the same slots (which the
    extraction then stores in float16)."""
    height, width = encoder.config.image_size
    frame_shape = tuple(videos.features["frames"].shape[1:])
    if frame_shape != (3, height, width):
        raise BadInputError(f"video frames of {list(frame_shape)}, the encoder takes "
                            f"[3, {height}, {width}]; load the videos at its image size")
    table = videos.with_format("arrow")
    arrays = {}
    for start in tqdm(range(0, len(table), 16), desc="encoding videos", unit="16 videos"):
        batch = table[start:start + 16]
        for video_index, frames in zip(batch["video_index"].to_pylist(),
                                       array_rows(batch["frames"]), strict=True):
            noise = video_noise(seed, video_index, encoder.config)[None]  # [1,n,d]
            encoded = encode_videos(encoder, torch.tensor(frames)[None], noise,
                                    EncodingOptions())
            arrays[video_index] = encoded.slots[0].numpy()
    return ArrayFeatures(arrays, name="slots encoded on the fly")
