"""Per-frame instance index maps from CLEVRER derender proposals (COCO compressed RLE masks).

A proposal file holds, for every frame, a list of detected objects: {mask: {size [H,W], counts},
score, color, material, shape}. The list is NOT in object_id order and its order changes from
frame to frame, so objects are identified by their attributes: CLEVRER never puts two identical
objects (same colour, material and shape) in one video, so the attribute triple names an object.

Index maps are [t,H,W] uint8: 0 is background, k >= 1 is the object described by
`objects[k-1]` (a `MaskObject`), the same object in every frame of the video.
- With the video's annotation, objects 1..n are the annotation's `object_property` in object_id
  order, so k = object_id + 1 and `MaskObject.object_id` is the annotation's id.
- A proposal whose triple is not in the annotation (the derenderer's attributes can be wrong in
  the real proposals), and every proposal of a video without an annotation (the test split),
  gets the next free index in order of first appearance, with `object_id = -1`: its identity is
  the triple, its annotation object unknown.
- An annotation that holds two objects with the same triple is ambiguous and is rejected.
- Two proposals of one frame with the same triple (a derenderer mistake) share its index.
- Where proposals overlap, the one with the higher score is drawn on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as coco_mask

from tasks.bad_input import BadInputError

MAX_OBJECTS = 255  # uint8 index maps


@dataclass(frozen=True)
class MaskObject:
    """The object drawn with index k in an index map is `objects[k-1]`."""

    object_id: int  # annotation object_id, or -1 where it cannot be known
    color: str
    material: str
    shape: str

    @property
    def attributes(self) -> tuple[str, str, str]:
        return (self.color, self.material, self.shape)


def decode_rle(rle: dict, location: str) -> np.ndarray:
    """COCO compressed RLE {size [H,W], counts str} -> [H,W] bool."""
    try:
        counts = rle["counts"]
        encoded = {
            "size": [int(value) for value in rle["size"]],
            "counts": counts.encode() if isinstance(counts, str) else counts,
        }
        return coco_mask.decode(encoded).astype(bool)
    except (KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"{location}: malformed RLE mask ({error!r})") from error


def annotation_objects(annotation: dict, location: str) -> list[MaskObject]:
    """The annotation's `object_property`, in object_id order; rejects repeated triples."""
    try:
        objects = [
            MaskObject(int(item["object_id"]), item["color"], item["material"], item["shape"])
            for item in annotation["object_property"]
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"{location}: malformed object_property ({error!r})") from error
    objects.sort(key=lambda item: item.object_id)
    if [item.object_id for item in objects] != list(range(len(objects))):
        raise BadInputError(f"{location}: object_ids are not 0..{len(objects) - 1}")
    triples = [item.attributes for item in objects]
    repeated = {triple for triple in triples if triples.count(triple) > 1}
    if repeated:
        raise BadInputError(
            f"{location}: objects with the same color/material/shape {sorted(repeated)}; "
            "proposal masks cannot be matched to object ids"
        )
    return objects


def index_maps_from_proposals(
    proposal: dict,
    frame_indices: Sequence[int],
    source_size: tuple[int, int],
    known_objects: list[MaskObject] | None,
    location: str,
    min_score: float = 0.0,
) -> tuple[np.ndarray, list[MaskObject]]:
    """Index maps [t,H,W] uint8 of the frames `frame_indices`, and the object of each index.

    `known_objects` are the annotation's objects (or None without an annotation); `source_size`
    (H, W) is the decoded video's size, which every mask must have.
    """
    frames_by_index = _frames_by_index(proposal, location)
    objects = list(known_objects or [])
    index_of = {item.attributes: position + 1 for position, item in enumerate(objects)}
    height, width = source_size
    index_maps = np.zeros((len(frame_indices), height, width), dtype=np.uint8)
    for position, frame_index in enumerate(frame_indices):
        if frame_index not in frames_by_index:
            raise BadInputError(f"{location}: no proposals for frame {frame_index}")
        frame_location = f"{location} frame {frame_index}"
        detections = _detections(frames_by_index[frame_index], frame_location, min_score)
        for _score, attributes, rle in sorted(detections, key=lambda item: item[0]):
            if attributes not in index_of:
                objects.append(MaskObject(-1, *attributes))
                index_of[attributes] = len(objects)
                if len(objects) > MAX_OBJECTS:
                    raise BadInputError(f"{location}: more than {MAX_OBJECTS} objects")
            mask = decode_rle(rle, frame_location)
            if mask.shape != (height, width):
                raise BadInputError(
                    f"{frame_location}: mask size {list(mask.shape)} differs from the video's "
                    f"frame size {[height, width]}"
                )
            index_maps[position][mask] = index_of[attributes]
    return index_maps, objects


def _frames_by_index(proposal: dict, location: str) -> dict[int, list]:
    try:
        return {int(frame["frame_index"]): frame["objects"] for frame in proposal["frames"]}
    except (KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"{location}: malformed frames list ({error!r})") from error


def _detections(
    objects: list, location: str, min_score: float
) -> list[tuple[float, tuple[str, str, str], dict]]:
    detections = []
    try:
        for item in objects:
            score = float(item.get("score", 1.0))
            if score >= min_score:
                attributes = (item["color"], item["material"], item["shape"])
                detections.append((score, attributes, item["mask"]))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BadInputError(f"{location}: malformed object ({error!r})") from error
    return detections
