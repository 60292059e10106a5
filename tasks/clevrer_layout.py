"""Where the files of a CLEVRER directory are (the official download, or CLEVRER-sim output).

    videos/{split}/video_00000-01000/video_00042.mp4
    annotations/{split}/annotation_00000-01000/annotation_00042.json   (train, validation)
    derender_proposals/proposal_NNNNN.json                              (optional, every split)
    questions/{split}.json

Files are found by globbing this layout; the folder names between the split and the file
(`video_00000-01000`, ...) are not relied on beyond their prefix, and the video index is read
from the file name (`video_00042.mp4` is video 42).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tasks.bad_input import BadInputError

SPLITS: tuple[str, ...] = ("train", "validation", "test")

_INDEX_PATTERN = re.compile(r"_(\d+)$")


@dataclass(frozen=True)
class ClevrerSplitFiles:
    """The files of one split, each keyed by video index."""

    root: Path
    split: str
    videos: dict[int, Path]
    annotations: dict[int, Path]
    proposals: dict[int, Path]  # proposals of every split, as the folder is shared
    questions: Path | None  # None when questions/{split}.json does not exist


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def discover_split(root: str | Path, split: str) -> ClevrerSplitFiles:
    """Find the videos, annotations, proposals and question file of `split` under `root`."""
    check_split(split)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"CLEVRER directory {root} does not exist")
    questions = root / "questions" / f"{split}.json"
    return ClevrerSplitFiles(
        root=root,
        split=split,
        videos=_index_files(root / "videos" / split, "video_*/video_*.mp4"),
        annotations=_index_files(root / "annotations" / split, "annotation_*/annotation_*.json"),
        proposals=_index_files(root / "derender_proposals", "proposal_*.json"),
        questions=questions if questions.is_file() else None,
    )


def video_index_from_filename(filename: str) -> int:
    """`video_00042.mp4` -> 42 (also for `annotation_...json`, `proposal_...json`)."""
    match = _INDEX_PATTERN.search(Path(filename).stem)
    if match is None:
        raise BadInputError(f"cannot read a video index from the file name {filename!r}")
    return int(match.group(1))


def video_filename(video_index: int) -> str:
    return f"video_{video_index:05d}.mp4"


def _index_files(folder: Path, pattern: str) -> dict[int, Path]:
    files: dict[int, Path] = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.glob(pattern)):
        index = video_index_from_filename(path.name)
        if index in files:
            raise BadInputError(f"two files for video {index}: {files[index]} and {path}")
        files[index] = path
    return dict(sorted(files.items()))
