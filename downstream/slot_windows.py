"""Windows of consecutive frames cut from a slot dataset, the training and evaluation samples of
a world model; joined, where a loss or a metric needs them, with the video's frames and true
instance masks.

    windows = SlotWindows(load_slots("user/clevrer-slots", "train"), length=16)
    windows[0]["slots"]      # [16,n,d] float32: frames start .. start+15 of one video

Only a (video row, start frame) table is held in memory; slots, frames and masks are read from
the memory-mapped datasets when an item is asked for.

Axes: l window frames, n slots, d slot channels, H W pixels.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import Dataset

from tasks.arrow_arrays import array_rows
from tasks.bad_input import BadInputError
from tasks.clevrer import VideoLoadingConfig, load_clevrer_videos
from tasks.slots import slot_provenance, slot_spec


class SlotWindows(Dataset):
    """Every window of `length` consecutive frames of every video, starting at frames 0,
    stride, 2 stride, ... (at most `max_per_video` of them); a video shorter than `length`
    gives none.

    An item is a dict: `video_index` and `start` (int64 tensors), `slots` `[l,n,d]` float32;
    with `videos` (rows of `tasks.clevrer`, loaded with the slots' frame stride: see
    `load_videos_for_slots`) also `frames` `[l,3,H,W]` uint8 if `with_frames`, and `masks`
    `[l,H,W]` int64 true instance ids (0 background) if `with_masks`.
    """

    def __init__(
        self,
        slots: datasets.Dataset,
        length: int,
        stride: int = 1,
        max_per_video: int | None = None,
        videos: datasets.Dataset | None = None,
        with_frames: bool = False,
        with_masks: bool = False,
    ):
        if length < 1 or stride < 1:
            raise ValueError(f"length and stride must be >= 1, got {length}, {stride}")
        if (with_frames or with_masks) and videos is None:
            raise ValueError("with_frames / with_masks need the videos")
        if with_masks and "masks" not in videos.features:
            raise ValueError("with_masks=True but the videos were loaded without masks")
        slot_spec(slots.features)
        self.length = length
        self.slots = slots.with_format("arrow")
        self.video_indices = self.slots["video_index"].to_numpy().astype(np.int64)
        num_frames = frame_counts(self.slots["slots"])
        counts = np.maximum((num_frames - length) // stride + 1, 0)
        if max_per_video is not None:
            counts = np.minimum(counts, max_per_video)
        if counts.sum() == 0:
            raise ValueError(f"no video has {length} frames (longest: {num_frames.max()})")
        self.rows = np.repeat(np.arange(len(counts)), counts)
        self.starts = np.concatenate([np.arange(count) * stride for count in counts])
        self.videos, self.video_rows = None, None
        self.with_frames, self.with_masks = with_frames, with_masks
        if with_frames or with_masks:
            self.videos = videos.with_format("arrow")
            self.video_rows = self._join_videos(num_frames)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row, start = int(self.rows[index]), int(self.starts[index])
        frames = slice(start, start + self.length)
        slots = array_rows(self.slots[row:row + 1]["slots"])[0][frames]
        item = {
            "video_index": torch.tensor(self.video_indices[row]),
            "start": torch.tensor(start),
            "slots": torch.from_numpy(slots.astype(np.float32)),
        }
        if self.videos is not None:
            video_row = int(self.video_rows[row])
            table = self.videos[video_row:video_row + 1]
            if self.with_frames:
                item["frames"] = torch.from_numpy(array_rows(table["frames"])[0][frames].copy())
            if self.with_masks:
                masks = array_rows(table["masks"])[0][frames]
                item["masks"] = torch.from_numpy(masks.astype(np.int64))
        return item

    def _join_videos(self, num_frames: np.ndarray) -> np.ndarray:
        """The video row of every slot row; a BadInputError if one is missing or its frame
        count differs from its slots'."""
        video_indices = self.videos["video_index"].to_numpy().astype(np.int64)
        position = {int(video): row for row, video in enumerate(video_indices)}
        missing = [int(v) for v in self.video_indices if int(v) not in position]
        if missing:
            raise BadInputError(f"{len(missing)} videos of the slot dataset are not among the "
                                f"videos, e.g. {missing[:5]}")
        rows = np.array([position[int(v)] for v in self.video_indices])
        video_frames = frame_counts(self.videos["frames"])[rows]
        wrong = np.flatnonzero(video_frames != num_frames)
        if len(wrong):
            row = wrong[0]
            raise BadInputError(
                f"video {self.video_indices[row]} has {video_frames[row]} frames but "
                f"{num_frames[row]} frames of slots (were the videos loaded with the slots' "
                "frame stride?)"
            )
        return rows


def frame_counts(column: pa.ChunkedArray) -> np.ndarray:
    """[rows] int64: the first-axis length of every row of an ArrayXD column, read from the
    Arrow offsets (no values are read)."""
    lengths = [pc.list_value_length(chunk.storage).to_numpy(zero_copy_only=False)
               for chunk in column.chunks]
    return np.concatenate(lengths).astype(np.int64) if lengths else np.zeros(0, np.int64)


def load_videos_for_slots(
    slots: datasets.Dataset,
    root: str | Path,
    split: str,
    size: tuple[int, int],
    with_masks: bool,
    cache_dir: str | Path | None = None,
) -> datasets.Dataset:
    """The CLEVRER videos of `split` under `root`, with the frames the slots were made from (the
    slots' frame stride), at `size` (h, w); masks from the derender proposals if `with_masks`."""
    if "+" in split:
        raise ValueError(f"videos are read one split at a time, got {split!r}: frames and masks "
                         "need the slots of one split")
    stride = slot_provenance(slots).frame_stride
    config = VideoLoadingConfig(frame_stride=stride, size=tuple(size), with_masks=with_masks)
    return load_clevrer_videos(root, split, config, cache_dir=cache_dir)
