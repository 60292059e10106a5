"""Build a `datasets.Dataset` once, keep it as memory-mapped Arrow, and load it back.

A cache entry is a folder `{cache_root}/{name}-{fingerprint}/` holding `dataset/` (written by
`Dataset.save_to_disk`), `load_report.json` (what the build skipped) and `key.json` (what the
fingerprint was computed from). The fingerprint hashes a JSON-able key that the caller makes from
everything the contents depend on (input files with sizes and modification times, options,
a format version). An entry is built in a temporary folder and renamed into place when complete,
so a crash never leaves a half-written cache, and two processes that build the same entry at
once both end with the same complete one. `cached_json` keeps a small JSON-able result the same
way, as one file `{cache_root}/{name}-{fingerprint}.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import datasets

from tasks.bad_input import LoadReport

DATASET_FOLDER = "dataset"
REPORT_FILE = "load_report.json"
KEY_FILE = "key.json"


def default_cache_root() -> Path:
    """`$HF_DATASETS_CACHE/smoothsa` (by default `~/.cache/huggingface/datasets/smoothsa`)."""
    return Path(datasets.config.HF_DATASETS_CACHE) / "smoothsa"


def resolve_cache_root(cache_dir: str | Path | None) -> Path:
    """`cache_dir` as a path, or `default_cache_root()` where it is None or empty."""
    return Path(cache_dir) if cache_dir else default_cache_root()


def fingerprint(key: Mapping) -> str:
    """A short stable hash of a JSON-able mapping."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def file_signature(path: Path, relative_to: Path) -> list:
    """[relative path, size in bytes, modification time in ns]: changes when the file does."""
    status = path.stat()
    return [str(path.relative_to(relative_to)), status.st_size, status.st_mtime_ns]


def cached_dataset(
    cache_root: Path,
    name: str,
    key: Mapping,
    build: Callable[[Path], tuple[datasets.Dataset, LoadReport]],
) -> tuple[datasets.Dataset, LoadReport, bool]:
    """Load the entry for `key`, or build it with `build(scratch_folder)` and store it.

    `build` gets an empty scratch folder for its own intermediate files (e.g. the
    `from_generator` cache), which is deleted afterwards. Returns (dataset memory-mapped from
    the cache, the build's report, whether this call built it).
    """
    cache_root = Path(cache_root)
    entry = cache_root / f"{name}-{fingerprint(key)}"
    if (entry / REPORT_FILE).is_file():
        return _load_entry(entry) + (False,)

    cache_root.mkdir(parents=True, exist_ok=True)
    temporary = cache_root / f".{entry.name}.building-{uuid.uuid4().hex[:8]}"
    scratch = temporary / "scratch"
    scratch.mkdir(parents=True)
    try:
        dataset, report = build(scratch)
        dataset.save_to_disk(str(temporary / DATASET_FOLDER))
        del dataset  # release the memory map on the scratch files before removing them
        shutil.rmtree(scratch)
        (temporary / KEY_FILE).write_text(json.dumps(key, sort_keys=True, default=str, indent=1))
        report.save(temporary / REPORT_FILE)  # written last: its presence marks a whole entry
        try:
            os.rename(temporary, entry)
        except OSError:
            if not (entry / REPORT_FILE).is_file():  # not a lost race with another process
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return _load_entry(entry) + (True,)


def _load_entry(entry: Path) -> tuple[datasets.Dataset, LoadReport]:
    dataset = datasets.load_from_disk(str(entry / DATASET_FOLDER))
    return dataset, LoadReport.load(entry / REPORT_FILE)


def cached_json(cache_root: Path, name: str, key: Mapping, build: Callable[[], Any]) -> Any:
    """The JSON-able value stored for `key`, or `build()` stored (written whole, then renamed
    into place) and returned as read back, so a first call and later ones return the same."""
    entry = Path(cache_root) / f"{name}-{fingerprint(key)}.json"
    if not entry.is_file():
        entry.parent.mkdir(parents=True, exist_ok=True)
        temporary = entry.with_name(f".{entry.name}.{uuid.uuid4().hex[:8]}")
        try:
            temporary.write_text(json.dumps({"key": key, "value": build()}, default=str))
            os.replace(temporary, entry)
        finally:
            temporary.unlink(missing_ok=True)
    return json.loads(entry.read_text())["value"]
