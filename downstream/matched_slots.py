"""Slots matched to ground-truth objects: the first half of the official recognition protocol.

For every frame (an image is one frame):
1. the discovered masks: the attention over the feature grid (Slot Attention's last iteration by
   default, or the decoder's masks), bilinearly upsampled to the ground-truth masks' size, each
   pixel given to its argmax slot (`ocl.metrics.attention_to_segmentation`), one-hot;
2. the IoU of every slot's mask with every object's mask (`ocl.metrics.segment_iou`);
3. Hungarian matching maximising the total IoU, and every pair with IoU <= `threshold` (0.1)
   dropped (`ocl.metrics.match_by_iou`): empty and padded objects never match, and with more
   slots than objects the extra slots stay unmatched.

Videos are matched FRAME BY FRAME, as the official code does (it folds time into the batch):
each matched (frame, slot, object) triple is one example for the probes, and a slot may be
matched to different objects in different frames. Each example carries its object's labels in
that frame (category attributes, continuous ones such as position) and its box: the tightest
box around the object's mask in that frame, xyxy, normalised by the frame's width and height.

Axes: t frames, f frames of a chunk, n slots, d slot channels, h w feature grid, H W pixels,
j objects, m matched pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields

import datasets
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from tqdm.auto import tqdm

from downstream.boxes import boxes_from_masks, normalize_boxes
from downstream.labelled_objects import (
    AttributeSpec,
    LabelledFrames,
    ObjectSource,
    check_attributes,
)
from downstream.slot_encoding import video_noise
from ocl.metrics import IoUMatches, attention_to_segmentation, match_by_iou, segment_iou
from ocl.modeling import SmoothSAModel
from tasks.bad_input import BadInputError
from tasks.slots import slot_spec

MASK_SOURCES: tuple[str, ...] = ("attention", "decoder")
PAIR_FIELDS: tuple[str, ...] = (
    "slots", "boxes", "iou", "sample_id", "frame_index", "slot_index", "object_index"
)
PIXELS_PER_IOU_CHUNK = 1_000_000  # frames x pixels whose IoU is computed at once (memory)


@dataclass(frozen=True)
class MatchingConfig:
    """How slots are matched to objects.

    threshold: pairs with IoU at or below it are dropped (the paper: 0.1).
    mask_source: "attention" (Slot Attention's masks, the paper's choice) or "decoder" (the
        decoder's masks).
    batch_size: images or videos per encoder call (videos of equal length are batched).
    seed: the preheater noise of a sample is a function of (seed, its sample_id) (see
        `downstream.slot_encoding.video_noise`), so the matched slots do not depend on batching
        or on the number of processes.
    """

    threshold: float = 0.1
    mask_source: str = "attention"
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.mask_source not in MASK_SOURCES:
            raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got "
                             f"{self.mask_source!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class MatchedSlots:
    """Matched (slot, object) pairs of many frames, and how many objects there were.

    slots: `[m,d]` float32, the matched slots.
    boxes: `[m,4]` float32, the matched objects' boxes: xyxy normalised to [0, 1].
    iou: `[m]` float32, the mask IoU of each pair (above the threshold).
    sample_id: `[m]` int64, the image id or video index of each pair.
    frame_index: `[m]` int64, the frame of each pair within its sample (0 for an image).
    slot_index: `[m]` int64, which of the frame's slots.
    object_index: `[m]` int64, which of the sample's objects (`LabelledFrames` order).
    attributes: name -> the matched objects' labels: `[m]` int64 (-1 unknown) for a category
        attribute, `[m,k]` float32 (NaN unknown) for a continuous one.
    attribute_specs: what each attribute is (see `downstream.labelled_objects.AttributeSpec`).
    num_objects: (frame, object) pairs whose object mask is not empty, matched or not.
    """

    slots: torch.Tensor
    boxes: torch.Tensor
    iou: torch.Tensor
    sample_id: torch.Tensor
    frame_index: torch.Tensor
    slot_index: torch.Tensor
    object_index: torch.Tensor
    attributes: dict[str, torch.Tensor]
    attribute_specs: tuple[AttributeSpec, ...]
    num_objects: int

    @property
    def num_matched(self) -> int:
        """m, the number of matched pairs."""
        return self.slots.shape[0]

    def spec(self, name: str) -> AttributeSpec:
        """The spec of attribute `name`; a KeyError listing the known ones."""
        for spec in self.attribute_specs:
            if spec.name == name:
                return spec
        raise KeyError(f"no attribute {name!r}; known: {[s.name for s in self.attribute_specs]}")

    def to(self, device: torch.device | str) -> MatchedSlots:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in PAIR_FIELDS:
            values[name] = values[name].to(device)
        values["attributes"] = {k: v.to(device) for k, v in self.attributes.items()}
        return MatchedSlots(**values)

    @classmethod
    def empty(cls, slot_dim: int, specs: tuple[AttributeSpec, ...]) -> MatchedSlots:
        """No pairs and no objects (e.g. a process given no samples)."""
        none = torch.zeros(0, dtype=torch.int64)
        return cls(
            slots=torch.zeros(0, slot_dim), boxes=torch.zeros(0, 4), iou=torch.zeros(0),
            sample_id=none, frame_index=none, slot_index=none, object_index=none,
            attributes={
                spec.name: torch.zeros(0, dtype=torch.int64) if spec.kind == "category"
                else torch.zeros(0, spec.size) for spec in specs
            },
            attribute_specs=tuple(specs), num_objects=0,
        )

    @classmethod
    def concatenate(cls, parts: Sequence[MatchedSlots]) -> MatchedSlots:
        """The pairs of every part, in order; the object counts summed."""
        if not parts:
            raise ValueError("nothing to concatenate: pass at least one MatchedSlots")
        specs = parts[0].attribute_specs
        if any(part.attribute_specs != specs for part in parts):
            raise ValueError("MatchedSlots with different attributes cannot be concatenated")
        return cls(
            **{name: torch.cat([getattr(part, name) for part in parts])
               for name in PAIR_FIELDS},
            attributes={spec.name: torch.cat([part.attributes[spec.name] for part in parts])
                        for spec in specs},
            attribute_specs=specs,
            num_objects=sum(part.num_objects for part in parts),
        )


def frame_matches(
    segmentation: torch.Tensor, num_slots: int, object_masks: torch.Tensor, threshold: float
) -> IoUMatches:
    """Hungarian matching on IoU of each frame's discovered segments with its objects.

    Args:
        segmentation: `[t,H,W]` int64 slot index of every pixel (see
            `ocl.metrics.attention_to_segmentation`).
        num_slots: n; slot ids are 0..n-1.
        object_masks: `[t,j,H,W]` bool true object masks (empty ones never match).
        threshold: pairs with IoU at or below it are dropped.

    Returns:
        IoUMatches whose batch_index is the frame, pred_index the slot, true_index the object.
    """
    if segmentation.shape[0] != object_masks.shape[0] or (
            segmentation.shape[1:] != object_masks.shape[2:]):
        raise ValueError(
            f"segmentation [t,H,W] and object masks [t,j,H,W] disagree: "
            f"{tuple(segmentation.shape)} and {tuple(object_masks.shape)}"
        )
    height, width = segmentation.shape[1:]
    chunk = max(1, PIXELS_PER_IOU_CHUNK // (height * width))
    ious = []
    for start in range(0, segmentation.shape[0], chunk):
        predicted = F.one_hot(segmentation[start : start + chunk], num_slots)
        ious.append(segment_iou(
            rearrange(predicted, "f h w n -> f (h w) n"),
            rearrange(object_masks[start : start + chunk], "f j h w -> f (h w) j"),
        ))
    return match_by_iou(torch.cat(ious), threshold)


def match_sample(
    slots: torch.Tensor,
    masks: torch.Tensor,
    sample: LabelledFrames,
    specs: tuple[AttributeSpec, ...],
    threshold: float,
) -> MatchedSlots:
    """The matched pairs of one image or video.

    Args:
        slots: `[t,n,d]` slots of each frame.
        masks: `[t,n,h,w]` the slots' masks over the feature grid (attention; any h, w).
        sample: the frames' objects, masks `[t,j,H,W]`.
        specs: the attributes of `sample`.
        threshold: pairs with IoU at or below it are dropped.
    """
    if slots.ndim != 3 or masks.ndim != 4 or slots.shape[:2] != masks.shape[:2]:
        raise ValueError(f"sample {sample.sample_id}: slots must be [t,n,d] and masks "
                         f"[t,n,h,w], got {tuple(slots.shape)} and {tuple(masks.shape)}")
    if slots.shape[0] != sample.num_frames:
        raise ValueError(f"sample {sample.sample_id}: {slots.shape[0]} frames of slots, "
                         f"{sample.num_frames} of ground truth")
    object_masks = sample.object_masks.to(masks.device)
    size = tuple(object_masks.shape[-2:])
    segmentation = attention_to_segmentation(masks.float(), size)
    matches = frame_matches(segmentation, slots.shape[1], object_masks, threshold)
    frame, slot, item = matches.batch_index, matches.pred_index, matches.true_index
    boxes = normalize_boxes(boxes_from_masks(object_masks), size)  # [t,j,4]
    return MatchedSlots(
        slots=slots[frame, slot].float(),
        boxes=boxes[frame, item],
        iou=matches.iou.float(),
        sample_id=torch.full_like(frame, sample.sample_id),
        frame_index=frame,
        slot_index=slot,
        object_index=item,
        attributes={spec.name: sample.attributes[spec.name].to(masks.device)[frame, item]
                    for spec in specs},
        attribute_specs=tuple(specs),
        num_objects=int(object_masks.flatten(2).any(dim=2).sum()),
    )


@torch.no_grad()
def extract_matched_slots(
    encoder: SmoothSAModel,
    source: ObjectSource,
    config: MatchingConfig = MatchingConfig(),
    indices: Iterable[int] | None = None,
    progress: bool = False,
) -> MatchedSlots:
    """Runs the frozen encoder over `source` (or its samples `indices`) and matches its slots
    to the objects of every frame. Frames are resized (bilinear) to the encoder's input size;
    the discovered masks are compared with the objects at the ground truth's own size.

    A video encoder encodes each video as one clip; an image encoder encodes each frame of a
    video as an image.
    """
    if encoder.config.backbone == "features":
        raise ValueError("the encoder's backbone is 'features' (its input is a feature map); "
                         "matching needs an encoder of pixels")
    encoder.eval()
    specs = tuple(source.attribute_specs)
    indices = list(range(len(source)) if indices is None else indices)
    parts = [MatchedSlots.empty(encoder.config.slot_dim, specs)]
    with tqdm(total=len(indices), desc="matching slots", disable=not progress) as bar:
        for batch in _batches_of_equal_length(source, indices, config.batch_size):
            for sample in batch.values():
                check_attributes(sample, specs)
            slots, masks = encode_samples(encoder, batch, config)
            for (sample, sample_slots, sample_masks) in zip(batch.values(), slots, masks,
                                                            strict=True):
                parts.append(match_sample(sample_slots, sample_masks, sample, specs,
                                          config.threshold).to("cpu"))
            bar.update(len(batch))
    return MatchedSlots.concatenate(parts)


def encode_samples(
    encoder: SmoothSAModel, batch: dict[int, LabelledFrames], config: MatchingConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slots `[b,t,n,d]` and masks `[b,t,n,h,w]` of samples of equal length t (keyed by their
    index in the source). An image encoder encodes every frame alone, with the sample's noise."""
    device = next(encoder.parameters()).device
    size = tuple(encoder.config.image_size)
    pixels = torch.cat([_resized(sample.frames.to(device), size) for sample in batch.values()])
    num_frames = next(iter(batch.values())).num_frames
    video = encoder.config.is_video
    noise = torch.stack([video_noise(config.seed, sample.sample_id, encoder.config)
                         for sample in batch.values()]).to(device)
    decode = config.mask_source == "decoder"
    if video:
        pixels = rearrange(pixels, "(b t) c h w -> b t c h w", t=num_frames)
        output = encoder(pixels, noise=noise, decode=decode)
    else:
        noise = repeat(noise, "b n d -> (b t) n d", t=num_frames)
        output = encoder(pixels, noise=noise, decode=decode)
    masks = output.decoder_attention if decode else output.attention
    slots = output.slots
    if not video:
        slots = rearrange(slots, "(b t) n d -> b t n d", t=num_frames)
        masks = rearrange(masks, "(b t) n h w -> b t n h w", t=num_frames)
    return slots, masks


def _resized(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`[t,3,H,W]` uint8 -> `[t,3,h,w]` float pixels in [0,1] of the encoder's input size."""
    pixels = frames.float() / 255
    if tuple(pixels.shape[-2:]) != size:
        pixels = F.interpolate(pixels, size=size, mode="bilinear", antialias=True)
    return pixels


def _batches_of_equal_length(
    source: ObjectSource, indices: list[int], batch_size: int
) -> Iterator[dict[int, LabelledFrames]]:
    """Consecutive samples, at most `batch_size` a batch, every batch of one length t."""
    batch: dict[int, LabelledFrames] = {}
    for index in indices:
        sample = source[index]
        if batch and (len(batch) == batch_size
                      or next(iter(batch.values())).num_frames != sample.num_frames):
            yield batch
            batch = {}
        batch[index] = sample
    if batch:
        yield batch


def match_stored_slots(
    slot_dataset: datasets.Dataset,
    source: ObjectSource,
    threshold: float = 0.1,
    indices: Iterable[int] | None = None,
    progress: bool = False,
) -> MatchedSlots:
    """Matches the slots of a slot dataset (`tasks/slots.py`, with masks) to the objects of the
    same videos in `source` (found by `video_index` == `sample_id`).

    The dataset's masks are the encoder's masks as `downstream/extract.py` stored them; the
    source must hold the same frames (load it with the dataset's frame stride).

    Args:
        indices: rows of `slot_dataset` to match (default: all).
    """
    spec = slot_spec(slot_dataset.features)
    if spec.mask_size is None:
        raise ValueError("the slot dataset has no masks; extract it with masks to probe it")
    position = {sample_id: i for i, sample_id in enumerate(source.sample_ids)}
    specs = tuple(source.attribute_specs)
    rows = slot_dataset.with_format("torch", columns=["video_index", "slots", "masks"])
    indices = list(range(len(slot_dataset)) if indices is None else indices)
    parts = [MatchedSlots.empty(spec.slot_dim, specs)]
    for row_index in tqdm(indices, desc="matching stored slots", disable=not progress):
        row = rows[row_index]
        video_index = int(row["video_index"])
        if video_index not in position:
            raise BadInputError(f"slot dataset row {row_index}: video {video_index} is not in "
                                f"the ground-truth source")
        sample = source[position[video_index]]
        check_attributes(sample, specs)
        parts.append(match_sample(row["slots"], row["masks"], sample, specs, threshold))
    return MatchedSlots.concatenate(parts)
