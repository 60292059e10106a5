"""Which videos go into which shard of a slot extraction, and the record that lets a rerun
resume it.

Shard k of a split holds videos [k*V, (k+1)*V) of the split's videos in index order (V = videos
per shard), so the number of shards and every shard's content are fixed before anything runs: a
shard's name never depends on how far a run got, and any process can write any shard. A shard is
finished when its file exists under its final name (files are renamed into place complete).

`extraction.json` in the output folder records what the output is made of (the encoder's
identity, the data's files, every setting that changes a byte), without local paths, since the
folder is published as it is. A rerun with other settings is refused rather than mixing two
extractions in one folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from tasks.bad_input import BadInputError
from tasks.clevrer_layout import SPLITS, discover_split
from tasks.slots import shard_name

RECORD_FILE = "extraction.json"


@dataclass(frozen=True)
class ShardTask:
    """One shard to write: `data/{split}-{index:05d}-of-{count:05d}.parquet`.

    videos: (video index, mp4 file) of its videos, in index order.
    """

    split: str
    index: int
    count: int
    videos: tuple[tuple[int, Path], ...]

    @property
    def filename(self) -> str:
        return shard_name(self.split, self.index, self.count)


@dataclass(frozen=True)
class ExtractionPlan:
    """Every shard of an extraction, split by split.

    shards: in (split, index) order.
    split_videos: videos per split.
    split_fingerprints: per split, a hash of its videos' (index, file name, size).
    """

    shards: tuple[ShardTask, ...]
    split_videos: dict[str, int]
    split_fingerprints: dict[str, str]

    def assigned(self, process_index: int, num_processes: int) -> tuple[ShardTask, ...]:
        """The shards process `process_index` of `num_processes` writes (every n-th)."""
        if not 0 <= process_index < num_processes:
            raise ValueError(f"process {process_index} is not one of {num_processes}")
        return self.shards[process_index::num_processes]

    def split_shards(self) -> dict[str, int]:
        """Shards per split."""
        return {split: sum(task.split == split for task in self.shards)
                for split in self.split_videos}


def plan_shards(data_root: str | Path, splits: tuple[str, ...] | None, videos_per_shard: int,
                max_videos: int | None = None) -> ExtractionPlan:
    """The shards of `splits` (None: every split with videos) of a CLEVRER-layout folder.

    max_videos: keep only the first videos of each split (smoke runs).

    Raises:
        FileNotFoundError: `data_root` does not exist.
        BadInputError: no split has videos, or a split that was asked for has none.
    """
    if videos_per_shard < 1:
        raise ValueError(f"videos_per_shard must be >= 1, got {videos_per_shard}")
    found = {split: discover_split(data_root, split) for split in (splits or SPLITS)}
    root = Path(data_root).expanduser().resolve()
    if splits is None:
        found = {split: files for split, files in found.items() if files.videos}
        if not found:
            raise BadInputError(
                f"no videos under {root}: expected videos/{{{','.join(SPLITS)}}}/"
                "video_00000-01000/video_00042.mp4 (the CLEVRER layout)"
            )
    for split, files in found.items():
        if not files.videos:
            raise BadInputError(f"no videos for split {split!r} under {root / 'videos' / split}")
    shards, split_videos, fingerprints = [], {}, {}
    for split, files in found.items():
        videos = list(files.videos.items())[:max_videos]
        count = -(-len(videos) // videos_per_shard)
        for index in range(count):
            chunk = videos[index * videos_per_shard:(index + 1) * videos_per_shard]
            shards.append(ShardTask(split, index, count, tuple(chunk)))
        split_videos[split] = len(videos)
        fingerprints[split] = _fingerprint(
            [[index, path.name, path.stat().st_size] for index, path in videos]
        )
    return ExtractionPlan(tuple(shards), split_videos, fingerprints)


def check_record(folder: Path, record: dict) -> bool:
    """Whether `folder` already holds `extraction.json`; a ValueError naming every setting
    that differs if it was made otherwise."""
    path = folder / RECORD_FILE
    if not path.is_file():
        if any((folder / "data").glob("*.parquet")):
            raise ValueError(f"{folder} holds shards but no {RECORD_FILE}, so they cannot be "
                             "resumed: extract to an empty or new output folder")
        return False
    try:
        existing = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete the folder to start "
                         "over") from error
    if existing == record:
        return True
    differences = [
        f"{key}: {json.dumps(existing.get(key))} there, {json.dumps(record.get(key))} now"
        for key in sorted(set(existing) | set(record)) if existing.get(key) != record.get(key)
    ]
    raise ValueError(
        f"{folder} holds an extraction made otherwise ({path}): " + "; ".join(differences)
        + ". Extract to another output folder, or delete this one to start over."
    )


def source_identity(path_or_repo_id: str) -> dict | str:
    """A slot dataset folder: the encoder and video files its extraction record names; an
    encoder folder: the SHA-256 of its weights file; a Hub id: the id."""
    folder = Path(path_or_repo_id).expanduser()
    if (folder / RECORD_FILE).is_file():
        record = json.loads((folder / RECORD_FILE).read_text())
        return {"encoder": record.get("encoder"), "splits": record.get("splits")}
    weights = folder / "model.safetensors"
    if weights.is_file():
        return {"weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()[:16]}
    return path_or_repo_id


def run_inputs(settings, sources: dict[str, str]) -> dict:
    """What a head's weights are trained on, for the resume check of `train_head`: its data
    settings (a dataclass; those at their defaults left out, so that a setting added to the code
    later does not stop a run from resuming) and the identity of each slot dataset or encoder in
    `sources` (name -> folder or Hub id; empty ones left out)."""
    values = asdict(settings)
    changed = {item.name: values[item.name] for item in fields(settings)
               if getattr(settings, item.name) != _default(item)}
    return {"data": changed,
            **{name: source_identity(path) for name, path in sources.items() if path}}


def _default(item):
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    return MISSING


def write_record(folder: Path, record: dict) -> None:
    """`extraction.json`, written under a temporary name and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomically(folder / RECORD_FILE, json.dumps(record, indent=2, sort_keys=True)
                          + "\n")


def write_text_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _fingerprint(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]
