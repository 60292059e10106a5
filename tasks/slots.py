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

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
import yaml
from datasets import Array3D, Array4D, Features, Value
from datasets.arrow_writer import ParquetWriter

SLOT_DTYPES: tuple[str, ...] = ("float16", "float32")
PROVENANCE_COLUMNS: tuple[str, ...] = ("encoder_id", "config_hash", "frame_stride")
_SHARD_PATTERN = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")


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


class SlotShard:
    """One Parquet shard of slot rows, written under a temporary name and renamed to `path` by
    `close()`: a crash never leaves a file at `path` that `load_slots` would read. A stale
    temporary file left by a killed process is overwritten.

        with SlotShard(folder / "data" / shard_name("train", 0, 4), spec, provenance) as shard:
            shard.write(video_index, slots)               # slots [t,n,d]
    """

    def __init__(self, path: str | Path, spec: SlotSpec, provenance: SlotProvenance,
                 extra_features: Features | None = None):
        self.path = Path(path)
        self.temporary_path = self.path.with_name(f".{self.path.name}.tmp")
        self.spec, self.provenance = spec, provenance
        self.extra_names = set(extra_features or {})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: ParquetWriter | None = ParquetWriter(
            features=slot_features(spec, extra_features), path=str(self.temporary_path),
            writer_batch_size=64,
        )
        self.video_indices: list[int] = []

    def write(self, video_index: int, slots: np.ndarray, masks: np.ndarray | None = None,
              extra: dict | None = None) -> None:
        """Add one video: slots [t,n,d], masks [t,n,h,w] when the spec has masks, and the
        values of the extra columns."""
        if self._writer is None:
            raise ValueError(f"shard {self.path} is already closed")
        if set(extra or {}) != self.extra_names:
            raise ValueError(f"video {video_index}: extra columns {sorted(extra or {})}, the "
                             f"shard has {sorted(self.extra_names)}")
        row = slot_row(self.spec, self.provenance, video_index, slots, masks)
        row.update(extra or {})
        self._writer.write(row)
        self.video_indices.append(int(video_index))

    def close(self) -> Path:
        """Finish the file and give it its final name; returns the path."""
        if self._writer is not None:
            self._writer.finalize()
            self._writer.close()
            self._writer = None
            os.replace(self.temporary_path, self.path)
        return self.path

    def abort(self) -> None:
        """Remove what was written."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.temporary_path.unlink(missing_ok=True)

    def __enter__(self) -> SlotShard:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def shard_name(split: str, index: int, count: int) -> str:
    """`{split}-{index:05d}-of-{count:05d}.parquet`, the Hub's shard naming."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside [0, {count})")
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


class SlotShardWriter:
    """Write slot rows to Parquet shards `{directory}/data/{split}-{i:05d}-of-{n:05d}.parquet`
    when the number of rows is not known in advance.

    Rows stream to disk; shards are written under temporary names and get their final names
    when `close()` knows their count, so an interrupted extraction leaves no shard that
    `load_slots` would read. (When the count is known up front, as in `downstream/extract.py`,
    write each `SlotShard` under its final name directly.)

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
        self.rows_per_shard = rows_per_shard
        self.extra_features = extra_features
        self._written: set[int] = set()
        self._finished: list[Path] = []  # shards under temporary names, in order
        self._shard: SlotShard | None = None

    def write(self, video_index: int, slots: np.ndarray, masks: np.ndarray | None = None,
              extra: dict | None = None) -> None:
        """Add one video: slots [t,n,d], masks [t,n,h,w] when the spec has masks, and the
        values of the extra columns."""
        if video_index in self._written:
            raise ValueError(f"video {video_index} was already written")
        if self._shard is None:
            number = len(self._finished)
            self._shard = SlotShard(self.folder / f".{self.split}-{number:05d}.parquet.done",
                                    self.spec, self.provenance, self.extra_features)
        self._shard.write(video_index, slots, masks, extra)
        self._written.add(video_index)
        if len(self._shard.video_indices) == self.rows_per_shard:
            self._close_shard()

    def close(self) -> list[Path]:
        """Finish the last shard and give every shard its final name; returns the shards."""
        self._close_shard()
        count = len(self._finished)
        shards = [self.folder / shard_name(self.split, i, count) for i in range(count)]
        for finished, shard in zip(self._finished, shards, strict=True):
            os.replace(finished, shard)
        self._finished = []
        return shards

    def abort(self) -> None:
        """Remove what was written."""
        if self._shard is not None:
            self._shard.abort()
            self._shard = None
        for path in self._finished:
            path.unlink(missing_ok=True)
        self._finished = []

    def __enter__(self) -> SlotShardWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _close_shard(self) -> None:
        if self._shard is not None:
            self._finished.append(self._shard.close())
            self._shard = None


def slot_row(spec: SlotSpec, provenance: SlotProvenance, video_index: int, slots: np.ndarray,
             masks: np.ndarray | None = None) -> dict:
    """One checked row of a slot dataset: slots [t,n,d] and masks [t,n,h,w] (when the spec has
    masks) cast to the spec's dtype; a ValueError naming the video if they do not fit."""
    where = f"video {video_index}"
    dtype = np.dtype(spec.dtype)
    row = {"video_index": int(video_index),
           "slots": _checked(slots, (spec.num_slots, spec.slot_dim), "slots", where, dtype)}
    if spec.mask_size is not None:
        if masks is None:
            raise ValueError(f"{where}: the spec has masks of {spec.mask_size}; pass masks")
        masks = _checked(masks, (spec.num_slots, *spec.mask_size), "masks", where, dtype)
        if len(masks) != len(row["slots"]):
            raise ValueError(f"{where}: {len(masks)} frames of masks, {len(row['slots'])} of "
                             "slots")
        row["masks"] = masks
    elif masks is not None:
        raise ValueError(f"{where}: masks given but the spec has no mask_size")
    row.update(encoder_id=provenance.encoder_id, config_hash=provenance.config_hash,
               frame_stride=provenance.frame_stride)
    return row


def _checked(array: np.ndarray, inner_shape: tuple, name: str, where: str,
             dtype: np.dtype) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 1 + len(inner_shape) or tuple(array.shape[1:]) != inner_shape:
        raise ValueError(f"{where}: {name} of shape {list(array.shape)}, expected "
                         f"[t, {', '.join(map(str, inner_shape))}]")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{where}: {name} must be floating point, got {array.dtype}")
    array = array.astype(dtype, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: {name} hold NaN or infinite values (in {dtype})")
    return array


def slot_dataset_card(spec: SlotSpec, provenance: SlotProvenance,
                      splits: tuple[str, ...] = ("train",), metadata: Mapping | None = None,
                      title: str | None = None) -> str:
    """A dataset card (README.md) whose YAML front matter maps each split to its Parquet shards
    (`configs`, read by `datasets.load_dataset`) and holds the slot dataset's description under
    `slot_dataset`: provenance, shapes, dtype, and any `metadata` (JSON-able values) after them.
    """
    masks_shape = ["t", spec.num_slots, *spec.mask_size] if spec.mask_size else None
    description = {
        "encoder_id": provenance.encoder_id,
        "config_hash": provenance.config_hash,
        "frame_stride": provenance.frame_stride,
        "slots_shape": ["t", spec.num_slots, spec.slot_dim],
        "masks_shape": masks_shape,
        "dtype": spec.dtype,
        # JSON round trip: tuples become lists, which safe_dump writes
        **json.loads(json.dumps(dict(metadata or {}))),
    }
    front_matter = {
        "configs": [{
            "config_name": "default",
            "data_files": [{"split": split, "path": f"data/{split}-*.parquet"}
                           for split in splits],
        }],
        "tags": ["object-centric", "slots"],
        "slot_dataset": description,
    }
    masks = "no masks"
    if spec.mask_size:
        masks = (f"`masks` [t,{spec.num_slots},{spec.mask_size[0]},{spec.mask_size[1]}] (the "
                 "encoder's attention masks, softmax over slots)")
    first_split = splits[0] if splits else "train"
    return (
        "---\n" + yaml.safe_dump(front_matter, sort_keys=False) + "---\n"
        + f"# {title or f'Slots of `{provenance.encoder_id}`'}\n\n"
        + f"One row per video: `video_index`, `slots` [t,{spec.num_slots},{spec.slot_dim}] "
        + f"{spec.dtype}, {masks}, and the provenance columns `encoder_id`, `config_hash` "
        + f"(`{provenance.config_hash}`) and `frame_stride` ({provenance.frame_stride}: frames "
        + f"0, {provenance.frame_stride}, {2 * provenance.frame_stride}, ... were encoded). "
        + f"Splits: {', '.join(splits)}. The YAML above (`slot_dataset`) says how they were "
        + "made.\n\n## Load\n\n```python\n"
        + "import datasets\n"
        + f'slots = datasets.load_dataset("REPO_ID_OR_FOLDER", split="{first_split}")\n'
        + "# or, checked to have the slot schema (smoothsa-downstream):\n"
        + "from tasks.slots import load_slots\n"
        + f'slots = load_slots("REPO_ID_OR_FOLDER", split="{first_split}")\n'
        + "```\n"
    )


def load_slots(path_or_repo_id: str | Path, split: str = "train", streaming: bool = False,
               cache_dir: str | Path | None = None,
               revision: str | None = None) -> datasets.Dataset | datasets.IterableDataset:
    """A slot dataset from a local folder or a Hub repo id, checked to have the slot schema.

    Without `streaming` the shards are converted once to Arrow in the `datasets` cache and the
    result is memory-mapped: any size costs each process the same small memory. A local folder
    that misses shards of a split (an unfinished extraction) is refused. A local folder's shards
    are named to the loader one by one, so its cache entry follows their modification times: a
    folder extracted again is read anew (loading the folder by its card would reuse the Arrow
    converted from the old shards).

    `split` may join splits with "+" ("train+validation"), as `datasets` reads Hub splits: their
    rows one after the other, in that order.
    """
    cache_dir = str(cache_dir) if cache_dir is not None else None
    folder = Path(path_or_repo_id)
    if folder.is_dir():
        counts = check_complete_shards(folder)
        shards = []
        for part in split.split("+"):
            if part not in counts:
                raise ValueError(f"slot dataset {folder} has no {part} split "
                                 f"(no data/{part}-*.parquet)")
            shards += [str(folder / "data" / shard_name(part, index, counts[part]))
                       for index in range(counts[part])]
        name = split.replace("+", "_")  # a split name `datasets` accepts
        dataset = datasets.load_dataset("parquet", data_files={name: shards}, split=name,
                                        streaming=streaming, cache_dir=cache_dir)
    else:
        dataset = datasets.load_dataset(str(path_or_repo_id), split=split, streaming=streaming,
                                        cache_dir=cache_dir, revision=revision)
    slot_spec(dataset.features)
    return dataset


def check_complete_shards(directory: str | Path) -> dict[str, int]:
    """The number of shards of each split in `{directory}/data`; a ValueError naming the split
    when shards `{split}-{i:05d}-of-{n:05d}.parquet` are missing or disagree on n."""
    counts: dict[str, set[int]] = {}
    found: dict[str, set[int]] = {}
    for path in sorted((Path(directory) / "data").glob("*.parquet")):
        match = _SHARD_PATTERN.match(path.name)
        if match is None:
            continue
        split = match["split"]
        counts.setdefault(split, set()).add(int(match["count"]))
        found.setdefault(split, set()).add(int(match["index"]))
    for split, count in counts.items():
        if len(count) > 1:
            raise ValueError(f"{directory}: {split} shards disagree on their count: "
                             f"{sorted(count)}")
        (total,) = count
        missing = sorted(set(range(total)) - found[split])
        if missing:
            raise ValueError(
                f"{directory} is an unfinished slot dataset: {split} misses {len(missing)} of "
                f"{total} shards (first: {shard_name(split, missing[0], total)}); rerun the "
                "extraction to finish it"
            )
    return {split: count.pop() for split, count in counts.items()}


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
