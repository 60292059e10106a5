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

    Resizing is done by FFmpeg's scaler with area averaging (antialiased), in the same pass as
    the YUV -> RGB conversion: 2.4x the frame rate of converting, then `F.interpolate(...,
    antialias=True)` at 480x320 -> 128x128. A file that cannot be opened or decoded, or that
    yields fewer frames than its header declares, raises `BadInputError` naming the file.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"video file {path} does not exist")
    kept, num_decoded, declared, source_size, failure = _decode(path, stride, size)
    if failure is not None:
        raise BadInputError(f"video file {path} {failure}")
    if num_decoded == 0:
        raise BadInputError(f"video file {path} holds no frames")
    if declared and num_decoded != declared:
        raise BadInputError(
            f"video file {path} is truncated or corrupt: decoded {num_decoded} frames, "
            f"its header declares {declared}"
        )
    frames = rearrange(np.stack(kept), "t h w c -> t c h w")
    return DecodedVideo(
        frames=np.ascontiguousarray(frames),
        frame_indices=np.arange(0, num_decoded, stride, dtype=np.int32),
        num_source_frames=num_decoded,
        source_size=source_size,
    )


def _decode(
    path: Path, stride: int, size: tuple[int, int] | None
) -> tuple[list[np.ndarray], int, int, tuple[int, int] | None, str | None]:
    """(kept [h,w,3] frames, frames decoded, frames declared, (H, W), failure or None).

    Failures are returned, not raised: an exception's traceback would keep this frame's PyAV
    objects alive, and a threaded decoder that is still alive when a process forks (datasets'
    `num_proc`, DataLoader workers) deadlocks the child that frees it.
    """
    kept: list[np.ndarray] = []
    num_decoded, declared, source_size = 0, 0, None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return kept, 0, 0, None, "has no video stream"
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            declared = stream.frames  # 0 when the container does not say
            for frame in container.decode(stream):
                if source_size is None:
                    source_size = (frame.height, frame.width)
                    height, width = tuple(size) if size is not None else source_size
                elif (frame.height, frame.width) != source_size:
                    return kept, num_decoded, declared, source_size, (
                        f"changes frame size at frame {num_decoded}"
                    )
                if num_decoded % stride == 0:
                    kept.append(frame.to_ndarray(  # [h,w,3]
                        format="rgb24", width=width, height=height, interpolation="AREA"
                    ))
                num_decoded += 1
    except av.error.FFmpegError as error:
        return kept, num_decoded, declared, source_size, f"cannot be decoded: {error}"
    return kept, num_decoded, declared, source_size, None


def resize_index_maps(index_maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[t,H,W] uint8 -> [t,h,w] uint8, nearest neighbour (labels are never blended)."""
    resized = F.interpolate(
        torch.from_numpy(index_maps)[:, None].float(), size=tuple(size), mode="nearest-exact"
    )
    return resized[:, 0].to(torch.uint8).numpy()
