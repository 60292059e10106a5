"""The one config of a CLEVRER-sim dataset: every number that decides its bytes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

PIXEL_FORMATS = ("yuv444p", "yuv420p")
"""The pixel formats CLEVRER-sim writes its H.264 videos in."""


@dataclass(frozen=True)
class SimConfig:
    """What to generate. Two runs with equal configs write identical files, whatever the
    number of worker processes."""

    num_videos: int
    """Number of videos; global indices 0 … num_videos-1, split train/validation/test."""
    num_frames: int = 128
    """Frames shown (rendered and annotated) per video."""
    future_frames: int = 48
    """Frames simulated past the clip (not rendered), the future that predictive questions ask
    about; CLEVRER simulates 7 s and shows 5 s, i.e. 47 more frames at 25 fps."""
    width: int = 64
    """Frame width in pixels (even: the H.264 encoder needs it)."""
    height: int = 64
    """Frame height in pixels (even)."""
    fps: int = 25
    """Frames per second of the video and of the sampled simulation."""
    pixel_format: str = "yuv444p"
    """The H.264 videos' pixel format: "yuv444p" keeps colour at every pixel; "yuv420p" (what
    CLEVRER's own 480x320 videos use) stores it at half the width and height, which at 64x64
    smears each object's colour over its one-pixel outline (mean error 10.7 of 255 there against
    2.1 with "yuv444p")."""
    field_of_view: float = 40.0
    """The camera's vertical field of view (degrees); objects are placed in view, so a narrower
    one draws them larger on a smaller patch of floor."""
    seed: int = 0
    """Dataset seed; video i draws only from (seed, i)."""
    min_objects: int = 3
    """Fewest objects in a scene."""
    max_objects: int = 6
    """Most objects in a scene (CLEVRER has 4–6)."""
    descriptive_per_video: int = 10
    """Descriptive questions asked per video, at most."""
    explanatory_per_video: int = 2
    """Explanatory questions asked per video, at most."""
    predictive_per_video: int = 1
    """Predictive questions asked per video, at most (only if something happens after the clip)."""
    counterfactual_per_video: int = 2
    """Counterfactual questions asked per video, at most."""

    def __post_init__(self) -> None:
        if self.num_videos < 1:
            raise ValueError(f"num_videos must be at least 1, got {self.num_videos}")
        if self.num_videos > 100_000:
            raise ValueError(
                f"num_videos is at most 100000 (5-digit file names), got {self.num_videos}"
            )
        if self.num_frames < 8:
            raise ValueError(f"num_frames must be at least 8, got {self.num_frames}")
        if self.future_frames < 0:
            raise ValueError(f"future_frames must be >= 0, got {self.future_frames}")
        for name in ("width", "height"):
            size = getattr(self, name)
            if size < 16 or size % 2:
                raise ValueError(f"{name} must be an even number >= 16, got {size}")
        if not 10.0 <= self.field_of_view <= 90.0:
            raise ValueError(f"field_of_view must be in [10, 90] degrees, got {self.field_of_view}")
        if self.pixel_format not in PIXEL_FORMATS:
            raise ValueError(
                f"pixel_format must be one of {PIXEL_FORMATS}, got {self.pixel_format!r}"
            )
        if self.fps < 1:
            raise ValueError(f"fps must be >= 1, got {self.fps}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 2 <= self.min_objects <= self.max_objects <= 8:
            raise ValueError(
                "need 2 <= min_objects <= max_objects <= 8, got "
                f"min_objects={self.min_objects}, max_objects={self.max_objects}"
            )
        for name in (
            "descriptive_per_video",
            "explanatory_per_video",
            "predictive_per_video",
            "counterfactual_per_video",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, int | float]:
        """Plain JSON-ready fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, int | float | str]) -> SimConfig:
        """Inverse of `to_dict`; unknown keys are an error naming them. Configs written before
        `pixel_format` existed made "yuv420p" videos."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"unknown SimConfig fields: {unknown}")
        return cls(**{"pixel_format": "yuv420p", **fields})


def parse_size(text: str) -> tuple[int, int]:
    """`"64"` → (64, 64); `"96x64"` → (96, 64) as (width, height)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"size must be N or WxH with integers, e.g. 64 or 96x64, got {text!r}")
    width = int(parts[0])
    height = int(parts[-1])
    return width, height
