"""CLEVRER (or CLEVRER-sim) videos with every object's labels in every frame, for the probes.

Object masks come from the derender proposals (`tasks.clevrer.load_clevrer_videos` with masks);
mask index k is `mask_objects[k-1]`, whose `object_id` names the object in the annotation
(`tasks/masks.py`). Labels per object and frame:
    color, shape, material   categories of the object (CLEVRER's 8 colours, 3 shapes, 2 materials)
    position                 x, y (and z with `with_height`) of `location` in world coordinates
    moving                   "moving" if the horizontal speed |(vx, vy)| of `velocity` is above
                             `moving_speed` (0.2, as CLEVRER-sim's question programs count it),
                             else "still"
from the annotation's `motion_trajectory` entry of that frame. Without an annotation (the test
split), or for a proposal that names no annotation object (`object_id` -1), position and moving
are unknown (NaN, -1).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from downstream.labelled_objects import AttributeSpec, LabelledFrames
from tasks.bad_input import BadInputError
from tasks.clevrer import VideoLoadingConfig, load_clevrer_videos
from tasks.clevrer_layout import discover_split
from tasks.questions import COLORS, MATERIALS, SHAPES

CATEGORIES: dict[str, tuple[str, ...]] = {"color": COLORS, "shape": SHAPES, "material": MATERIALS}
MOVING: tuple[str, ...] = ("still", "moving")


@dataclass(frozen=True)
class ClevrerObjectsConfig:
    """Which frames, and how labels are made.

    frame_stride: keep frames 0, s, 2s, ... (a slot dataset's stride when probing one).
    size: (height, width) of the stored frames and masks; None keeps the files' size.
    max_videos: the first videos of the split only (0: all).
    moving_speed: horizontal speed above which an object is "moving".
    with_height: positions are (x, y, z) instead of (x, y).
    """

    frame_stride: int = 1
    size: tuple[int, int] | None = None
    max_videos: int = 0
    moving_speed: float = 0.2
    with_height: bool = False

    def __post_init__(self):
        if self.max_videos < 0:
            raise ValueError(f"max_videos must be >= 0 (0: all), got {self.max_videos}")
        if self.moving_speed < 0:
            raise ValueError(f"moving_speed must be >= 0, got {self.moving_speed}")


class ClevrerObjects:
    """The videos of one split as `LabelledFrames` (an `ObjectSource`)."""

    def __init__(self, root: str | Path, split: str,
                 config: ClevrerObjectsConfig = ClevrerObjectsConfig(),
                 cache_dir: str | Path | None = None):
        self.config = config
        videos = load_clevrer_videos(
            root, split,
            VideoLoadingConfig(frame_stride=config.frame_stride, size=config.size,
                               with_masks=True),
            cache_dir=cache_dir,
        )
        if config.max_videos:
            videos = videos.select(range(min(config.max_videos, len(videos))))
        self.rows = videos.with_format("torch", columns=["frames", "masks"], dtype=torch.uint8,
                                       output_all_columns=True)
        self.annotations = discover_split(root, split).annotations
        self.sample_ids = [int(index) for index in videos["video_index"]]
        axes = ("x", "y", "z") if config.with_height else ("x", "y")
        self.attribute_specs = (
            *(AttributeSpec(name, "category", values) for name, values in CATEGORIES.items()),
            AttributeSpec("position", "continuous", axes),
            AttributeSpec("moving", "category", MOVING),
        )

    def __len__(self) -> int:
        return len(self.sample_ids)

    def object_ids(self) -> dict[int, list[int]]:
        """Each video's objects' annotation object_ids, in the order of its `LabelledFrames`
        objects (-1: an object the annotation does not know)."""
        objects = self.rows.select_columns(["mask_objects"]).with_format(None)["mask_objects"]
        return {video: [item["object_id"] for item in items]
                for video, items in zip(self.sample_ids, objects, strict=True)}

    def __getitem__(self, index: int) -> LabelledFrames:
        row = self.rows[index]
        video_index = int(row["video_index"])
        objects = row["mask_objects"]
        index_maps = row["masks"]  # [t,H,W]
        num_frames = index_maps.shape[0]
        object_ids = torch.arange(1, len(objects) + 1, dtype=index_maps.dtype)
        attributes = {
            name: torch.tensor([_category(values, item[name], video_index, name)
                                for item in objects], dtype=torch.int64).expand(num_frames, -1)
            for name, values in CATEGORIES.items()
        }
        position, moving = self._motion(video_index, row["frame_indices"], objects)
        attributes.update(position=position, moving=moving)
        return LabelledFrames(
            sample_id=video_index,
            frames=row["frames"],
            object_masks=index_maps[:, None] == object_ids[None, :, None, None],
            attributes=attributes,
        )

    def _motion(self, video_index: int, frame_indices: list[int],
                objects: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions `[t,j,k]` and moving flags `[t,j]` of the objects in the kept frames."""
        axes = 3 if self.config.with_height else 2
        position = torch.full((len(frame_indices), len(objects), axes), math.nan)
        moving = torch.full((len(frame_indices), len(objects)), -1, dtype=torch.int64)
        path = self.annotations.get(video_index)
        if path is None:
            return position, moving
        states = _trajectory(path)
        for row, frame in enumerate(frame_indices):
            for column, item in enumerate(objects):
                if item["object_id"] < 0:
                    continue
                state = states.get((int(frame), item["object_id"]))
                if state is None:
                    raise BadInputError(f"{path}: motion_trajectory has no object "
                                        f"{item['object_id']} in frame {frame}")
                position[row, column] = torch.tensor(state[0][:axes])
                moving[row, column] = int(math.hypot(*state[1][:2]) > self.config.moving_speed)
        return position, moving


def _trajectory(path: Path) -> dict[tuple[int, int], tuple[list[float], list[float]]]:
    """(frame_id, object_id) -> (location, velocity) from an annotation file."""
    try:
        annotation = json.loads(Path(path).read_text())
        return {
            (int(frame["frame_id"]), int(state["object_id"])):
                ([float(x) for x in state["location"]], [float(v) for v in state["velocity"]])
            for frame in annotation["motion_trajectory"] for state in frame["objects"]
        }
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"{path}: malformed motion_trajectory ({error!r})") from error


def _category(values: tuple[str, ...], value: str, video_index: int, name: str) -> int:
    if value not in values:
        raise BadInputError(f"video {video_index}: {name} {value!r} is not one of {values}")
    return values.index(value)
