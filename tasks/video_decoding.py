"""Decode an mp4 into frames with PyAV: every `stride`-th frame, optionally resized.

Shapes: t frames kept, h x w the output size, H x W the size stored in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from tasks.bad_input import BadInputError


@dataclass(frozen=True)
class DecodedVideo:
    """Frames of one video and where they came from."""

    frames: np.ndarray  # [t,3,h,w] uint8, RGB
    frame_indices: np.ndarray  # [t] int32: index of each kept frame in the file
    num_source_frames: int  # frames in the file
    source_size: tuple[int, int]  # (H, W) stored in the file


def decode_video(
    path: str | Path, stride: int = 1, size: tuple[int, int] | None = None
) -> DecodedVideo:
    """Decode frames 0, stride, 2*stride, ... of `path`, resized to `size` = (h, w) if given.

    Resizing is bilinear with antialiasing (`F.interpolate`), rounded back to uint8. A file that
    cannot be opened or decoded, or that yields fewer frames than its header declares, raises
    `BadInputError` naming the file.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"video file {path} does not exist")
    kept: list[np.ndarray] = []
    num_decoded = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInputError(f"video file {path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            declared = stream.frames  # 0 when the container does not say
            for frame in container.decode(stream):
                if num_decoded % stride == 0:
                    kept.append(frame.to_ndarray(format="rgb24"))  # [H,W,3]
                num_decoded += 1
    except av.error.FFmpegError as error:
        raise BadInputError(f"video file {path} cannot be decoded: {error}") from error
    if num_decoded == 0:
        raise BadInputError(f"video file {path} holds no frames")
    if declared and num_decoded != declared:
        raise BadInputError(
            f"video file {path} is truncated or corrupt: decoded {num_decoded} frames, "
            f"its header declares {declared}"
        )
    frames = rearrange(np.stack(kept), "t h w c -> t c h w")
    source_size = (frames.shape[2], frames.shape[3])
    if size is not None and tuple(size) != source_size:
        frames = resize_frames(frames, size)
    return DecodedVideo(
        frames=np.ascontiguousarray(frames),
        frame_indices=np.arange(0, num_decoded, stride, dtype=np.int32),
        num_source_frames=num_decoded,
        source_size=source_size,
    )


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[t,3,H,W] uint8 -> [t,3,h,w] uint8, bilinear with antialiasing."""
    resized = F.interpolate(
        torch.from_numpy(frames).float(), size=tuple(size), mode="bilinear", antialias=True,
        align_corners=False,
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8).numpy()


def resize_index_maps(index_maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[t,H,W] uint8 -> [t,h,w] uint8, nearest neighbour (labels are never blended)."""
    resized = F.interpolate(
        torch.from_numpy(index_maps)[:, None].float(), size=tuple(size), mode="nearest-exact"
    )
    return resized[:, 0].to(torch.uint8).numpy()
