"""Files in CLEVRER's formats: mp4 video, annotation, derender proposals, question files.

Every file is written to a temporary name beside its destination and renamed into place, so a
file that exists is complete. Bytes depend only on the inputs (fixed encoder settings, one
encoder thread, no timestamps in the container).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
from pycocotools import mask as mask_utils

from tasks.clevrer_sim.events import Event
from tasks.clevrer_sim.layout import video_filename
from tasks.clevrer_sim.physics import Trajectory
from tasks.clevrer_sim.scene import Scene

VIDEO_OPTIONS = {"crf": "12", "preset": "medium", "threads": "1", "x264-params": "mbtree=0"}
"""libx264 settings: near-lossless at these small sizes; one thread (workers parallelise); no
macroblock-tree rate control, whose output was seen to change with what the process encoded
before (same frames, different bytes), which would break "same seed, same bytes"."""


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_json(path: Path, record: object, indent: int | None = None) -> None:
    """Write `record` as JSON to `path` atomically (compact unless `indent` is given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    separators = (",", ":") if indent is None else (",", ": ")
    temporary.write_text(json.dumps(record, indent=indent, separators=separators))
    os.replace(temporary, path)


def write_video(path: Path, frames: np.ndarray, fps: int, pixel_format: str) -> None:
    """Encode frames `[t,h,w,3]` (uint8 RGB) as H.264 in `pixel_format` in an mp4, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    num_frames, height, width, _ = frames.shape
    with av.open(str(temporary), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options=dict(VIDEO_OPTIONS))
        stream.width, stream.height, stream.pix_fmt = width, height, pixel_format
        stream.codec_context.thread_count = 1
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frames[index], format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    os.replace(temporary, path)


def read_video(path: Path) -> np.ndarray:
    """Decode an mp4 → frames `[t,h,w,3]` (uint8 RGB)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _collision_record(event: Event) -> dict:
    return {
        "object_ids": list(event.objects),
        "frame_id": event.frame,
        "location": list(event.location) if event.location else None,
    }


def annotation_record(
    index: int,
    scene: Scene,
    trajectory: Trajectory,
    inside: np.ndarray,
    collisions: Iterable[Event],
    unseen_collisions: Iterable[Event],
    counterfactual: dict[int, list[Event]],
    future_frames: int,
) -> dict:
    """The annotation of one video in CLEVRER's schema, plus a `simulation` key (CLEVRER-sim's
    own) holding what the annotation cannot show: collisions after the clip and collisions of the
    re-simulations with one object removed (`removed_object_id`), so that predictive and
    counterfactual answers can be re-derived from this file alone.

    `inside` `[t,n]` (bool) gives the clip length t; `trajectory` may run longer.
    """
    num_frames = inside.shape[0]
    motion = []
    for frame in range(num_frames):
        objects = []
        for column, object_id in enumerate(trajectory.object_ids):
            objects.append(
                {
                    "object_id": object_id,
                    "location": trajectory.positions[frame, column].tolist(),
                    "orientation": trajectory.orientations[frame, column].tolist(),
                    "velocity": trajectory.velocities[frame, column].tolist(),
                    "angular_velocity": trajectory.angular_velocities[frame, column].tolist(),
                    "inside_camera_view": bool(inside[frame, column]),
                }
            )
        motion.append({"frame_id": frame, "objects": objects})
    return {
        "scene_index": index,
        "video_filename": video_filename(index),
        "object_property": [
            {"object_id": o.object_id, "color": o.color, "material": o.material, "shape": o.shape}
            for o in scene.objects
        ],
        "motion_trajectory": motion,
        "collision": [_collision_record(e) for e in collisions],
        "simulation": {
            "future_frames": future_frames,
            "unseen_collision": [_collision_record(e) for e in unseen_collisions],
            "counterfactual": [
                {"removed_object_id": removed, "collision": [_collision_record(e) for e in events]}
                for removed, events in sorted(counterfactual.items())
            ],
        },
    }


def encode_mask(mask: np.ndarray) -> dict:
    """Binary mask `[h,w]` → COCO compressed RLE {"size": [h, w], "counts": str}."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict) -> np.ndarray:
    """COCO compressed RLE → binary mask `[h,w]` (uint8)."""
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})


def proposal_record(index: int, scene: Scene, masks: np.ndarray) -> dict:
    """Per-frame object masks `[t,h,w]` (object_id per pixel, -1 for none) as CLEVRER's derender
    proposals: ground-truth masks with score 1, for every object with a visible pixel."""
    frames = []
    for frame_index, instance in enumerate(masks):
        objects = []
        for state in scene.objects:
            mask = instance == state.object_id
            if mask.any():
                objects.append(
                    {
                        "mask": encode_mask(mask),
                        "score": 1.0,
                        "color": state.color,
                        "material": state.material,
                        "shape": state.shape,
                        "video_index": index,
                        "frame_index": frame_index,
                    }
                )
        frames.append({"frame_index": frame_index, "objects": objects})
    return {"video_index": index, "video_filename": video_filename(index), "frames": frames}
