"""Images and videos with their ground-truth objects: what the recognition probes match slots to.

A source of labelled objects (CLEVRER videos in `downstream/clevrer_objects.py`, COCO images in
`downstream/coco_source.py`) is a sequence of `LabelledFrames` plus the `AttributeSpec` of each
label it carries. An image is a one-frame video.

Axes: t frames, j objects, H W pixels, k components of a continuous attribute.
"""

from dataclasses import dataclass
from typing import Protocol

import torch

ATTRIBUTE_KINDS: tuple[str, ...] = ("category", "continuous")


@dataclass(frozen=True)
class AttributeSpec:
    """One per-object label.

    name: e.g. "class", "color", "position".
    kind: "category" (probed for accuracy) or "continuous" (a vector, probed for R²).
    values: the category names, index i naming category i; or the names of the vector's
        components (e.g. ("x", "y")).
    """

    name: str
    kind: str
    values: tuple[str, ...]

    def __post_init__(self):
        if self.kind not in ATTRIBUTE_KINDS:
            raise ValueError(f"attribute {self.name!r}: kind must be one of {ATTRIBUTE_KINDS}, "
                             f"got {self.kind!r}")
        if not self.values:
            raise ValueError(f"attribute {self.name!r} has no values")

    @property
    def size(self) -> int:
        """Number of categories, or of the vector's components."""
        return len(self.values)


@dataclass
class LabelledFrames:
    """One image or video and its objects.

    sample_id: the video index or image id, as the source names it.
    frames: `[t,3,H,W]` uint8 RGB.
    object_masks: `[t,j,H,W]` bool, one mask per object and frame; an object absent from a
        frame (off screen, occluded, or padding) has an empty mask there.
    attributes: name -> labels of the j objects in every frame: `[t,j]` int64 category indices
        (-1: unknown) for a "category" attribute, `[t,j,k]` float32 (NaN: unknown) for a
        "continuous" one.
    """

    sample_id: int
    frames: torch.Tensor
    object_masks: torch.Tensor
    attributes: dict[str, torch.Tensor]

    def __post_init__(self):
        where = f"sample {self.sample_id}"
        if self.frames.ndim != 4 or self.frames.shape[1] != 3 or self.frames.dtype != torch.uint8:
            raise ValueError(f"{where}: frames must be [t,3,H,W] uint8, got "
                             f"{tuple(self.frames.shape)} {self.frames.dtype}")
        t, _, height, width = self.frames.shape
        masks = self.object_masks
        if masks.ndim != 4 or masks.dtype != torch.bool or masks.shape[0] != t or (
                tuple(masks.shape[2:]) != (height, width)):
            raise ValueError(f"{where}: object_masks must be [t,j,H,W] = [{t},j,{height},"
                             f"{width}] bool, got {tuple(masks.shape)} {masks.dtype}")
        for name, labels in self.attributes.items():
            if tuple(labels.shape[:2]) != tuple(masks.shape[:2]) or labels.ndim not in (2, 3):
                raise ValueError(f"{where}: attribute {name!r} must be [t,j] or [t,j,k] with "
                                 f"[t,j] = {list(masks.shape[:2])}, got {tuple(labels.shape)}")

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def num_objects(self) -> int:
        """j, including objects absent from every frame."""
        return self.object_masks.shape[1]


class ObjectSource(Protocol):
    """A sequence of labelled images or videos."""

    attribute_specs: tuple[AttributeSpec, ...]
    sample_ids: list[int]  # the sample_id of each sample, in order

    def __len__(self) -> int:
        """Number of samples."""

    def __getitem__(self, index: int) -> LabelledFrames:
        """Sample `index` (0 <= index < len)."""


def check_attributes(sample: LabelledFrames, specs: tuple[AttributeSpec, ...]) -> None:
    """Raises a ValueError unless `sample` carries exactly the attributes of `specs`, shaped and
    typed as their kinds say."""
    where = f"sample {sample.sample_id}"
    names = {spec.name for spec in specs}
    if set(sample.attributes) != names:
        raise ValueError(f"{where}: attributes {sorted(sample.attributes)}, the source declares "
                         f"{sorted(names)}")
    for spec in specs:
        labels = sample.attributes[spec.name]
        if spec.kind == "category":
            if labels.ndim != 2 or labels.dtype != torch.int64:
                raise ValueError(f"{where}: category {spec.name!r} must be [t,j] int64, got "
                                 f"{tuple(labels.shape)} {labels.dtype}")
            if labels.numel() and (labels.min() < -1 or labels.max() >= spec.size):
                raise ValueError(f"{where}: {spec.name!r} labels must be -1 (unknown) or in "
                                 f"[0, {spec.size}), got {labels.unique().tolist()}")
        elif labels.ndim != 3 or labels.shape[2] != spec.size or not labels.is_floating_point():
            raise ValueError(f"{where}: continuous {spec.name!r} must be [t,j,{spec.size}] "
                             f"float, got {tuple(labels.shape)} {labels.dtype}")
