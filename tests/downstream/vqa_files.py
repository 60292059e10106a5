"""Data of the VQA tests: a tiny CLEVRER directory with a slot dataset of every split."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Features, Value

from tasks.slots import SlotProvenance, SlotShardWriter, SlotSpec, slot_dataset_card
from tests.tasks.clevrer_directory import ClevrerDirectory, make_clevrer_directory

SLOT_SPEC = SlotSpec(num_slots=3, slot_dim=8, dtype="float16")
PROVENANCE = SlotProvenance(encoder_id="tiny/smoothsa-video", config_hash="0123abcd",
                            frame_stride=1)


@dataclass
class VqaFiles:
    clevrer: ClevrerDirectory
    slots: Path  # slot dataset of every split, 5 frames a video
    cache: Path  # question and slot dataset caches


def video_slots(video_index: int, num_frames: int, spec: SlotSpec = SLOT_SPEC,
                offset: float = 0.0) -> np.ndarray:
    """[t,n,d]: frame f of video v holds v's random slots + offset + f (frames tell apart)."""
    base = np.random.default_rng(video_index).standard_normal((1, spec.num_slots, spec.slot_dim))
    return base + offset + np.arange(num_frames)[:, None, None]


def write_slot_dataset(folder: Path, splits: dict[str, tuple[int, ...]], num_frames: int = 5,
                       offset: float = 0.0, removed_slot: int | None = None,
                       observed_frames: int | None = None) -> Path:
    """Slots of `video_slots` for every video of `splits`; with `removed_slot` or
    `observed_frames`, a rollout dataset's column of that name (downstream/rollout_dataset.py)
    too."""
    columns = {name: value for name, value in (("removed_slot", removed_slot),
                                               ("observed_frames", observed_frames))
               if value is not None}
    extra = Features({name: Value("int32") for name in columns}) if columns else None
    for split, videos in splits.items():
        with SlotShardWriter(folder, SLOT_SPEC, PROVENANCE, split=split,
                             extra_features=extra) as writer:
            for video_index in videos:
                writer.write(video_index, video_slots(video_index, num_frames, offset=offset),
                             extra=columns or None)
    (folder / "README.md").write_text(slot_dataset_card(SLOT_SPEC, PROVENANCE,
                                                        tuple(splits)))
    return folder


def make_vqa_files(root: Path) -> VqaFiles:
    clevrer = make_clevrer_directory(root / "clevrer")
    return VqaFiles(clevrer, write_slot_dataset(root / "slots", clevrer.splits), root / "cache")
