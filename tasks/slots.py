"""The slot-feature dataset: one row per video, as `downstream/extract.py` writes it and every
head reads it.

    video_index   int32
    slots         Array3D [t,n,d] float16 | float32
    masks         Array4D [t,n,h,w] same dtype (optional): the encoder's attention masks
    encoder_id    string  provenance: the encoder (Hub id or checkpoint name)
    config_hash   string  provenance: hash of the encoder config that made the slots
    frame_stride  int32   provenance: frames 0, s, 2s, ... of the video were encoded

Provenance is stored in every row (Parquet keeps a constant column almost free), so it survives
Parquet, the Hub, concatenation and streaming. On disk a slot dataset is a folder laid out as a
Hub dataset repository holds it: `data/{split}-{i:05d}-of-{n:05d}.parquet` and a card
`README.md`; `load_slots` reads such a folder or a Hub repo id through `datasets.load_dataset`,
and returns it memory-mapped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
from datasets import Array3D, Array4D, Features, Value
from datasets.arrow_writer import ParquetWriter

SLOT_DTYPES: tuple[str, ...] = ("float16", "float32")
PROVENANCE_COLUMNS: tuple[str, ...] = ("encoder_id", "config_hash", "frame_stride")


@dataclass(frozen=True)
class SlotProvenance:
    """Where slots came from."""

    encoder_id: str  # the encoder: a Hub model id or a checkpoint name
    config_hash: str  # hash of the encoder config
    frame_stride: int  # frames 0, s, 2s, ... were encoded

    def __post_init__(self):
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {self.frame_stride}")


@dataclass(frozen=True)
class SlotSpec:
    """Shapes and dtype of a slot dataset."""

    num_slots: int  # n
    slot_dim: int  # d
    dtype: str = "float16"  # of slots and masks: "float16" or "float32"
    mask_size: tuple[int, int] | None = None  # (h, w) of the stored masks; None: no masks

    def __post_init__(self):
        if self.num_slots < 1 or self.slot_dim < 1:
            raise ValueError(f"num_slots and slot_dim must be >= 1, got {self.num_slots}, "
                             f"{self.slot_dim}")
        if self.dtype not in SLOT_DTYPES:
            raise ValueError(f"dtype must be one of {SLOT_DTYPES}, got {self.dtype!r}")
        if self.mask_size is not None and (len(self.mask_size) != 2 or min(self.mask_size) < 1):
            raise ValueError(f"mask_size must be (h, w) of positive ints, got {self.mask_size}")


def slot_features(spec: SlotSpec, extra: Features | None = None) -> Features:
    """The schema of a slot dataset with shapes and dtype from `spec`, plus `extra` columns
    (e.g. a rollout's provenance) after the provenance columns."""
    features = {
        "video_index": Value("int32"),
        "slots": Array3D(shape=(None, spec.num_slots, spec.slot_dim), dtype=spec.dtype),
    }
    if spec.mask_size is not None:
        features["masks"] = Array4D(shape=(None, spec.num_slots, *spec.mask_size),
                                    dtype=spec.dtype)
    features.update(encoder_id=Value("string"), config_hash=Value("string"),
                    frame_stride=Value("int32"))
    for name in extra or {}:
        if name in features:
            raise ValueError(f"extra column {name!r} is a slot dataset column")
    features.update(extra or {})
    return Features(features)


def slot_spec(features: Features) -> SlotSpec:
    """The `SlotSpec` of a slot dataset's features; a ValueError if they are not one."""
    missing = {"video_index", "slots", *PROVENANCE_COLUMNS} - set(features)
    if missing or not isinstance(features["slots"], Array3D):
        raise ValueError(f"not a slot dataset: missing columns {sorted(missing)} or slots is "
                         f"not an Array3D, features {features}")
    _, num_slots, slot_dim = features["slots"].shape
    masks = features.get("masks")
    return SlotSpec(num_slots, slot_dim, features["slots"].dtype,
                    tuple(masks.shape[2:]) if masks is not None else None)


class SlotShardWriter:
    """Write slot rows to Parquet shards `{directory}/data/{split}-{i:05d}-of-{n:05d}.parquet`.

    Rows stream to disk; shards are written under temporary names and get their final names
    when `close()` knows their count, so an interrupted extraction leaves no shard that
    `load_slots` would read. `extra_features` adds columns that every row must give in
    `write(..., extra={name: value})`.

        with SlotShardWriter(folder, spec, provenance) as writer:
            for video_index, slots in ...:
                writer.write(video_index, slots)          # slots [t,n,d]
    """

    def __init__(self, directory: str | Path, spec: SlotSpec, provenance: SlotProvenance,
                 split: str = "train", rows_per_shard: int = 1000,
                 extra_features: Features | None = None):
        if rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
        self.folder = Path(directory) / "data"
        if list(self.folder.glob(f"{split}-*.parquet")):
            raise FileExistsError(f"{self.folder} already holds {split} shards")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.spec, self.provenance, self.split = spec, provenance, split
        self.features = slot_features(spec, extra_features)
        self.extra_names = set(extra_features or {})
        self.rows_per_shard = rows_per_shard
        self._dtype = np.dtype(spec.dtype)
        self._written: set[int] = set()
        self._temporary_shards: list[Path] = []
        self._writer: ParquetWriter | None = None
        self._rows_in_shard = 0

    def write(self, video_index: int, slots: np.ndarray, masks: np.ndarray | None = None,
              extra: dict | None = None) -> None:
        """Add one video: slots [t,n,d], masks [t,n,h,w] when the spec has masks, and the
        values of the extra columns."""
        where = f"video {video_index}"
        if video_index in self._written:
            raise ValueError(f"{where} was already written")
        if set(extra or {}) != self.extra_names:
            raise ValueError(f"{where}: extra columns {sorted(extra or {})}, the writer has "
                             f"{sorted(self.extra_names)}")
        slots = self._checked(slots, (self.spec.num_slots, self.spec.slot_dim), "slots", where)
        row = {"video_index": int(video_index), "slots": slots}
        if self.spec.mask_size is not None:
            if masks is None:
                raise ValueError(f"{where}: the spec has masks of {self.spec.mask_size}; "
                                 "pass masks")
            masks = self._checked(masks, (self.spec.num_slots, *self.spec.mask_size), "masks",
                                  where)
            if len(masks) != len(slots):
                raise ValueError(f"{where}: {len(masks)} frames of masks, {len(slots)} of slots")
            row["masks"] = masks
        elif masks is not None:
            raise ValueError(f"{where}: masks given but the spec has no mask_size")
        row.update(encoder_id=self.provenance.encoder_id,
                   config_hash=self.provenance.config_hash,
                   frame_stride=self.provenance.frame_stride)
        row.update(extra or {})
        if self._writer is None:
            path = self.folder / f".{self.split}-{len(self._temporary_shards):05d}.parquet.tmp"
            self._temporary_shards.append(path)
            self._writer = ParquetWriter(features=self.features, path=str(path),
                                         writer_batch_size=64)
        self._writer.write(row)
        self._written.add(video_index)
        self._rows_in_shard += 1
        if self._rows_in_shard == self.rows_per_shard:
            self._close_shard()

    def close(self) -> list[Path]:
        """Finish the last shard and give every shard its final name; returns the shards."""
        self._close_shard()
        count = len(self._temporary_shards)
        shards = [self.folder / f"{self.split}-{i:05d}-of-{count:05d}.parquet"
                  for i in range(count)]
        for temporary, shard in zip(self._temporary_shards, shards, strict=True):
            os.replace(temporary, shard)
        self._temporary_shards = []
        return shards

    def abort(self) -> None:
        """Remove what was written."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for path in self._temporary_shards:
            path.unlink(missing_ok=True)
        self._temporary_shards = []

    def __enter__(self) -> SlotShardWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.finalize()
            self._writer.close()
            self._writer = None
            self._rows_in_shard = 0

    def _checked(self, array: np.ndarray, inner_shape: tuple, name: str,
                 where: str) -> np.ndarray:
        array = np.asarray(array)
        if array.ndim != 1 + len(inner_shape) or tuple(array.shape[1:]) != inner_shape:
            raise ValueError(f"{where}: {name} of shape {list(array.shape)}, expected "
                             f"[t, {', '.join(map(str, inner_shape))}]")
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{where}: {name} must be floating point, got {array.dtype}")
        array = array.astype(self._dtype, copy=False)
        if not np.isfinite(array).all():
            raise ValueError(f"{where}: {name} hold NaN or infinite values (in {self._dtype})")
        return array


def slot_dataset_card(spec: SlotSpec, provenance: SlotProvenance,
                      splits: tuple[str, ...] = ("train",)) -> str:
    """A minimal dataset card (README.md) that maps each split to its Parquet shards."""
    data_files = "".join(f"  - split: {split}\n    path: data/{split}-*.parquet\n"
                         for split in splits)
    masks = f"masks [t,{spec.num_slots},{spec.mask_size[0]},{spec.mask_size[1]}]" if (
        spec.mask_size) else "no masks"
    return (
        "---\nconfigs:\n- config_name: default\n  data_files:\n" + data_files
        + "tags:\n- object-centric\n- slots\n---\n"
        + f"# Slots of `{provenance.encoder_id}`\n\n"
        + f"One row per video: slots [t,{spec.num_slots},{spec.slot_dim}] {spec.dtype}, "
        + f"{masks}. Encoder config hash `{provenance.config_hash}`, "
        + f"frame stride {provenance.frame_stride}.\n"
    )


def load_slots(path_or_repo_id: str | Path, split: str = "train", streaming: bool = False,
               cache_dir: str | Path | None = None,
               revision: str | None = None) -> datasets.Dataset | datasets.IterableDataset:
    """A slot dataset from a local folder or a Hub repo id, checked to have the slot schema.

    Without `streaming` the shards are converted once to Arrow in the `datasets` cache and the
    result is memory-mapped: any size costs each process the same small memory.
    """
    dataset = datasets.load_dataset(
        str(path_or_repo_id), split=split, streaming=streaming,
        cache_dir=str(cache_dir) if cache_dir is not None else None, revision=revision,
    )
    slot_spec(dataset.features)
    return dataset


def slot_provenance(dataset: datasets.Dataset) -> SlotProvenance:
    """The one provenance of every row; a ValueError if the rows disagree."""
    values = {}
    for name in PROVENANCE_COLUMNS:
        distinct = pc.unique(dataset.with_format("arrow")[name]).to_pylist()
        if len(distinct) != 1:
            raise ValueError(f"slot dataset rows have {len(distinct)} values of {name}: "
                             f"{distinct[:5]}")
        values[name] = distinct[0]
    return SlotProvenance(**values)
