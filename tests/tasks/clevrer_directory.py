"""A tiny CLEVRER directory in the official layout, with known content, for the loader tests.

Videos are short clips of coloured rectangles that slide right by 2 pixels a frame on a dark
background, written with PyAV: losslessly (libx264rgb, qp 0) so decoded pixels can be compared
exactly, or as the real download is (libx264, yuv420p) for a tolerance check. Every video has
an annotation (train, validation), a derender proposal file with one RLE mask per object per
frame listed in shuffled order, and questions of all four types (the test split without answers).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from pycocotools import mask as coco_mask

RGB = {
    "gray": (128, 128, 128), "red": (200, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60),
    "brown": (130, 80, 30), "cyan": (30, 200, 200), "purple": (140, 40, 180),
    "yellow": (230, 210, 30),
}
BACKGROUND = (40, 40, 40)
# (color, material, shape) of the objects, taken in turn per video: unique within a video
OBJECT_KINDS = [
    ("red", "rubber", "cube"), ("blue", "metal", "sphere"), ("green", "rubber", "cylinder"),
    ("yellow", "metal", "cube"), ("purple", "metal", "cylinder"), ("cyan", "rubber", "sphere"),
]
DEFAULT_SPLITS = {"train": (0, 1, 2), "validation": (10000, 10001), "test": (15000,)}


@dataclass(frozen=True)
class FixtureObject:
    object_id: int
    color: str
    material: str
    shape: str
    top: int
    left: int  # at frame 0; the rectangle moves right by 2 pixels a frame
    height: int = 6
    width: int = 8

    def mask(self, frame_index: int, image_size: tuple[int, int]) -> np.ndarray:
        """[H,W] bool: where the object is in frame `frame_index`."""
        mask = np.zeros(image_size, dtype=bool)
        left = self.left + 2 * frame_index
        mask[self.top : self.top + self.height, left : left + self.width] = True
        return mask


@dataclass
class ClevrerDirectory:
    root: Path
    splits: dict[str, tuple[int, ...]]
    num_frames: int
    image_size: tuple[int, int]  # (H, W)
    objects: dict[int, list[FixtureObject]] = field(default_factory=dict)

    def frames(self, video_index: int) -> np.ndarray:
        """[T,H,W,3] uint8: the frames written to the video."""
        frames = np.empty((self.num_frames, *self.image_size, 3), dtype=np.uint8)
        frames[:] = BACKGROUND
        for frame_index in range(self.num_frames):
            for item in self.objects[video_index]:
                frames[frame_index][item.mask(frame_index, self.image_size)] = RGB[item.color]
        return frames

    def video_path(self, video_index: int) -> Path:
        return self.root / "videos" / self.split_of(video_index) / _folder(
            "video", video_index) / f"video_{video_index:05d}.mp4"

    def annotation_path(self, video_index: int) -> Path:
        return self.root / "annotations" / self.split_of(video_index) / _folder(
            "annotation", video_index) / f"annotation_{video_index:05d}.json"

    def proposal_path(self, video_index: int) -> Path:
        return self.root / "derender_proposals" / f"proposal_{video_index:05d}.json"

    def question_path(self, split: str) -> Path:
        return self.root / "questions" / f"{split}.json"

    def split_of(self, video_index: int) -> str:
        return next(split for split, indices in self.splits.items() if video_index in indices)


def make_clevrer_directory(
    root: Path,
    splits: dict[str, tuple[int, ...]] = DEFAULT_SPLITS,
    num_frames: int = 8,
    image_size: tuple[int, int] = (32, 48),
    codec: str = "lossless",
) -> ClevrerDirectory:
    """Write videos, annotations, proposals and questions under `root`."""
    directory = ClevrerDirectory(Path(root), dict(splits), num_frames, image_size)
    for split, indices in splits.items():
        for video_index in indices:
            num_objects = 2 + video_index % 2
            directory.objects[video_index] = [
                FixtureObject(
                    object_id, *OBJECT_KINDS[(video_index + object_id) % len(OBJECT_KINDS)],
                    top=2 + 10 * object_id, left=2 + 4 * object_id,
                )
                for object_id in range(num_objects)
            ]
            write_video(directory.video_path(video_index), directory.frames(video_index), codec)
            if split != "test":
                _write_json(directory.annotation_path(video_index), _annotation(directory,
                                                                                video_index))
            _write_json(directory.proposal_path(video_index), _proposal(directory, video_index))
        _write_json(directory.question_path(split), [
            _scene_questions(directory, video_index, with_answers=split != "test")
            for video_index in indices
        ])
    return directory


def write_video(
    path: Path, frames: np.ndarray, codec: str = "lossless", faststart: bool = False
) -> None:
    """Write [T,H,W,3] uint8 frames as an mp4 at 25 fps (`faststart`: the index first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec_name, pixel_format, options = {
        "lossless": ("libx264rgb", "rgb24", {"qp": "0"}),
        "yuv420p": ("libx264", "yuv420p", {}),
    }[codec]
    container_options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=container_options) as container:
        stream = container.add_stream(codec_name, rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pixel_format
        stream.options = options
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def rle(mask: np.ndarray) -> dict:
    """[H,W] bool -> COCO compressed RLE with a str `counts`, as the proposal files hold it."""
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(value) for value in encoded["size"]],
            "counts": encoded["counts"].decode()}


def _folder(prefix: str, video_index: int) -> str:
    start = video_index // 1000 * 1000
    return f"{prefix}_{start:05d}-{start + 1000:05d}"


def _write_json(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def _annotation(directory: ClevrerDirectory, video_index: int) -> dict:
    objects = directory.objects[video_index]
    return {
        "scene_index": video_index,
        "video_filename": f"video_{video_index:05d}.mp4",
        "object_property": [
            {"object_id": item.object_id, "color": item.color, "material": item.material,
             "shape": item.shape}
            for item in objects
        ],
        "motion_trajectory": [
            {"frame_id": frame_index, "objects": [
                {"object_id": item.object_id, "location": [0.1 * frame_index, 0.0, 0.2],
                 "orientation": [0.0, 0.0, 0.0], "velocity": [0.1, 0.0, 0.0],
                 "angular_velocity": [0.0, 0.0, 0.0], "inside_camera_view": True}
                for item in objects
            ]}
            for frame_index in range(directory.num_frames)
        ],
        "collision": [{"object_ids": [0, 1], "frame_id": 3, "location": [0.0, 0.0, 0.2]}],
    }


def _proposal(directory: ClevrerDirectory, video_index: int) -> dict:
    shuffle = random.Random(video_index)
    frames = []
    for frame_index in range(directory.num_frames):
        objects = [
            {"mask": rle(item.mask(frame_index, directory.image_size)), "score": 0.99,
             "color": item.color, "material": item.material, "shape": item.shape}
            for item in directory.objects[video_index]
        ]
        shuffle.shuffle(objects)
        frames.append({"frame_index": frame_index, "objects": objects})
    return {"video_index": video_index, "video_filename": f"video_{video_index:05d}.mp4",
            "frames": frames}


def _scene_questions(directory: ClevrerDirectory, video_index: int, with_answers: bool) -> dict:
    first, second = directory.objects[video_index][:2]
    questions = [
        {"question_id": 0, "question": "How many objects are moving when the video ends?",
         "question_type": "descriptive", "question_subtype": "count",
         "program": ["objects", "moving", "filter_moving", "end", "count"],
         "answer": str(len(directory.objects[video_index]))},
        {"question_id": 1,
         "question": f"What is the color of the {first.material} {first.shape}?",
         "question_type": "descriptive", "question_subtype": "query_color",
         "program": ["objects", first.material, "filter_material", first.shape,
                     "filter_shape", "unique", "query_color"],
         "answer": first.color},
        {"question_id": 2,
         "question": f"Which of the following is responsible for the collision between the "
                     f"{first.color} object and the {second.shape}?",
         "question_type": "explanatory",
         "program": ["events", "objects", first.color, "filter_color", "unique",
                     "filter_collision", "unique", "filter_ancestor", "belong_to"],
         "choices": [
             {"choice_id": 0, "choice": f"the presence of the {second.color} {second.shape}",
              "program": ["objects", second.color, "filter_color", "unique"],
              "answer": "correct"},
             {"choice_id": 1, "choice": f"the {first.shape}'s entrance",
              "program": ["events", "objects", first.shape, "filter_shape", "unique",
                          "filter_in", "unique"],
              "answer": "wrong"},
         ]},
        {"question_id": 3, "question": "What will happen next?", "question_type": "predictive",
         "program": ["events", "unseen_events"],
         "choices": [
             {"choice_id": 0, "choice": f"The {first.shape} and the {second.shape} collide",
              "program": ["objects", first.shape, "filter_shape", "unique", "objects",
                          second.shape, "filter_shape", "unique", "filter_collision"],
              "answer": "correct"},
         ]},
        {"question_id": 4,
         "question": f"Which event will happen if the {second.shape} is removed?",
         "question_type": "counterfactual",
         "program": ["objects", second.shape, "filter_shape", "unique", "get_counterfact"],
         "choices": [
             {"choice_id": 0, "choice": f"The {first.color} object collides with the wall",
              "program": ["objects", first.color, "filter_color", "unique"],
              "answer": "wrong"},
             {"choice_id": 1, "choice": f"The {first.shape} exits the scene",
              "program": ["events", "objects", first.shape, "filter_shape", "unique",
                          "filter_out"],
              "answer": "wrong"},
         ]},
    ]
    if not with_answers:
        for question in questions:
            question.pop("answer", None)
            for choice in question.get("choices", []):
                choice.pop("answer")
    return {"scene_index": video_index, "video_filename": f"video_{video_index:05d}.mp4",
            "questions": questions}
