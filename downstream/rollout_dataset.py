"""Rollout datasets: each video's observed slots followed by the slots a world model imagines
after them, in the slot-dataset schema (`tasks/slots.py`), so whatever reads slots (the VQA
reasoner's `--rollout`) reads rollouts too.

Extra columns, one value per row (the provenance stays in every row, as for slot datasets):

    world_model_id    string  the world model (Hub id or folder)
    observed_frames   int32   frames 0..o-1 are the encoder's slots of the video
    predicted_frames  int32   frames o..o+p-1 are predicted (no teacher forcing)
    removed_slot      int32   counterfactual: the slot left out of the rollout, -1 for none

A removed slot is zeros in every frame, observed ones included, and took no part in the
rollout (it is masked out of attention, not zeroed: see `WorldModel.forward`); a reader should
mask it the same way (`slot_mask = arange(n) != removed_slot`). Rollout datasets have no masks
column.

Which slot to remove: by index (the same slot in every video), or by object: the slot whose
argmax segment in the slot dataset's masks has the highest IoU with the object's true mask over
the frames the world model sees first (the last `window` observed frames). Slot index is
simple and exact; object matching is what "without the cylinder" needs, and is only as good as
the encoder's segmentation: a video where the object is not visible in those frames (or no slot
overlaps it) gets no removal, `removed_slot = -1`, and is counted.

Axes: t frames, n slots, d slot channels, h w mask grid.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets
import numpy as np
import torch
from datasets import Features, Value
from tqdm.auto import tqdm

from downstream.world_model import WorldModel
from ocl.metrics import attention_to_segmentation, segment_iou
from tasks.arrow_arrays import array_rows
from tasks.slots import (
    SlotProvenance,
    SlotShardWriter,
    SlotSpec,
    slot_dataset_card,
    slot_provenance,
    slot_spec,
)

ROLLOUT_FEATURES = Features({
    "world_model_id": Value("string"),
    "observed_frames": Value("int32"),
    "predicted_frames": Value("int32"),
    "removed_slot": Value("int32"),
})


@torch.no_grad()
def write_rollout_dataset(
    world_model: WorldModel,
    slots: datasets.Dataset,
    output: str | Path,
    split: str,
    steps: int,
    world_model_id: str,
    observed_frames: int = 0,
    removed_slots: np.ndarray | None = None,
    batch_size: int = 32,
    rows_per_shard: int = 1000,
) -> Path:
    """Rolls out every video of `slots` and writes the rollout dataset `output` (shards of
    `split` and the card). Returns `output`.

    Args:
        world_model: in eval mode; it runs on its device.
        steps: frames to predict after the observed ones.
        observed_frames: frames of each video kept and given as burn-in (0: all of them).
        removed_slots: `[rows]` the slot to remove from each row of `slots`, -1 for none.
    """
    spec, provenance = slot_spec(slots.features), slot_provenance(slots)
    if removed_slots is None:
        removed_slots = np.full(len(slots), -1)
    if len(removed_slots) != len(slots) or (removed_slots >= spec.num_slots).any():
        raise ValueError(f"removed_slots must give a slot in [-1, {spec.num_slots}) for each of "
                         f"the {len(slots)} videos")
    table = slots.with_format("arrow")
    output = Path(output)
    rollout_spec = SlotSpec(spec.num_slots, spec.slot_dim, spec.dtype)
    with SlotShardWriter(output, rollout_spec, provenance, split, rows_per_shard,
                         ROLLOUT_FEATURES) as writer:
        for start in tqdm(range(0, len(slots), batch_size), desc=f"rollout {split}"):
            chunk = table[start:start + batch_size]
            observed = [
                observed_part(row, observed_frames, int(video))
                for row, video in zip(array_rows(chunk["slots"]),
                                      chunk["video_index"].to_pylist(), strict=True)
            ]
            removed = removed_slots[start:start + batch_size]
            predicted = roll_out_by_length(world_model, observed, removed, steps)
            for video, seen, ahead, slot in zip(chunk["video_index"].to_pylist(), observed,
                                                predicted, removed, strict=True):
                seen = seen.copy()
                if slot >= 0:
                    seen[:, slot] = 0
                writer.write(video, np.concatenate([seen, ahead.astype(seen.dtype)]), extra={
                    "world_model_id": world_model_id, "observed_frames": len(seen),
                    "predicted_frames": steps, "removed_slot": int(slot),
                })
    write_card(output, rollout_spec, provenance, world_model_id)
    return output


def observed_part(slots: np.ndarray, observed_frames: int, video_index: int) -> np.ndarray:
    """The first `observed_frames` frames of a video's slots `[t,n,d]` (0: all)."""
    if observed_frames > len(slots):
        raise ValueError(f"video {video_index} has {len(slots)} frames of slots, fewer than "
                         f"observed_frames = {observed_frames}")
    return slots[:observed_frames] if observed_frames else slots


def roll_out_by_length(world_model: WorldModel, observed: list[np.ndarray],
                       removed: np.ndarray, steps: int) -> list[np.ndarray]:
    """Predicted slots `[steps,n,d]` after each video's observed slots `[t_i,n,d]`; videos of
    the same length are rolled out as one batch."""
    device = world_model.device
    predicted: list[np.ndarray | None] = [None] * len(observed)
    window = world_model.config.window
    for length in sorted({len(slots) for slots in observed}):
        members = [i for i, slots in enumerate(observed) if len(slots) == length]
        burn_in = torch.from_numpy(np.stack([observed[i][-window:] for i in members]))
        burn_in = burn_in.to(device=device, dtype=torch.float32)
        slot_mask = torch.ones(burn_in.shape[0], burn_in.shape[2], dtype=torch.bool,
                               device=device)
        for row, i in enumerate(members):
            if removed[i] >= 0:
                slot_mask[row, removed[i]] = False
        rolled = world_model.rollout(burn_in, steps, slot_mask).float().cpu().numpy()
        for row, i in enumerate(members):
            predicted[i] = rolled[row]
    return predicted


def slot_of_object(slot_masks: torch.Tensor, index_maps: torch.Tensor,
                   object_index: int) -> int | None:
    """The slot that best covers one object: highest IoU of its argmax segment with the
    object's mask over the given frames (one spatio-temporal volume).

    Args:
        slot_masks: `[t,n,h,w]` the encoder's masks (attention over slots).
        index_maps: `[t,H,W]` true instance ids; the object is `index_maps == object_index`.

    Returns:
        The slot index, or None when the object is not in these frames or no slot overlaps it.
    """
    segmentation = attention_to_segmentation(slot_masks.float(), tuple(index_maps.shape[-2:]))
    predicted = torch.nn.functional.one_hot(segmentation.flatten(), slot_masks.shape[1])
    target = (index_maps == object_index).flatten()
    if not target.any():
        return None
    iou = segment_iou(predicted[None], target[None, :, None])[0, :, 0]
    return int(iou.argmax()) if iou.max() > 0 else None


def slots_of_object(slots: datasets.Dataset, videos: datasets.Dataset, object_id: int,
                    observed_frames: int, window: int) -> np.ndarray:
    """`[rows]` the slot of annotation object `object_id` in each video of `slots` (-1 where it
    cannot be found), matched over the last `window` observed frames.

    Args:
        slots: a slot dataset with masks `[t,n,h,w]`.
        videos: the same videos' rows (`tasks.clevrer`) with true masks at the slots' mask grid
            `[t,h,w]` and the slots' frame stride.
        observed_frames: as in `write_rollout_dataset` (0: all frames).
    """
    if slot_spec(slots.features).mask_size is None:
        raise ValueError("removing an object by its mask needs a slot dataset with masks; "
                         "remove a slot by index instead")
    slot_table = slots.with_format("arrow")
    video_table = videos.with_format("arrow")
    video_rows = {v: row for row, v in enumerate(video_table["video_index"].to_pylist())}
    chosen = np.full(len(slots), -1)
    for row, video in enumerate(tqdm(slot_table["video_index"].to_pylist(), desc="matching")):
        if video not in video_rows:
            raise ValueError(f"video {video} of the slot dataset is not among the videos")
        video_row = video_table[video_rows[video]:video_rows[video] + 1]
        objects = video_row["mask_objects"].to_pylist()[0]
        indices = [k + 1 for k, item in enumerate(objects) if item["object_id"] == object_id]
        if not indices:
            continue
        slot_masks = array_rows(slot_table[row:row + 1]["masks"])[0]
        end = observed_frames or len(slot_masks)
        frames = slice(max(end - window, 0), end)
        index_maps = array_rows(video_row["masks"])[0]
        slot = slot_of_object(torch.from_numpy(slot_masks[frames].astype(np.float32)),
                              torch.from_numpy(index_maps[frames].astype(np.int64)), indices[0])
        chosen[row] = -1 if slot is None else slot
    missing = int((chosen < 0).sum())
    if missing:
        print(f"object {object_id}: no slot found in {missing} of {len(chosen)} videos "
              "(not visible in the matched frames); they are rolled out without removal")
    return chosen


def write_card(output: Path, spec: SlotSpec, provenance: SlotProvenance,
               world_model_id: str) -> None:
    """The dataset card over every split written so far, replaced atomically."""
    splits = sorted({path.name.split("-")[0] for path in (output / "data").glob("*.parquet")})
    card = slot_dataset_card(spec, provenance, tuple(splits)) + (
        f"\n## Rollouts of `{world_model_id}`\n\nEach row holds the video's first "
        "`observed_frames` frames of encoder slots, then `predicted_frames` frames predicted by "
        "the world model without teacher forcing. `removed_slot` (-1: none) is a slot left out "
        "of the rollout (a counterfactual without that object): zeros in every frame; mask it "
        "out.\n"
    )
    temporary = output / ".README.md.partial"
    temporary.write_text(card)
    os.replace(temporary, output / "README.md")
