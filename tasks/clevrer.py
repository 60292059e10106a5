"""CLEVRER as Hugging Face datasets: one row per video, and one row per question.

    videos = load_clevrer_videos("data/clevrer", "train", VideoLoadingConfig(frame_stride=4,
                                 size=(128, 128)))
    questions = load_clevrer_questions("data/clevrer", "train")

Both read the official directory layout (`tasks/clevrer_layout.py`) and are built once with
`Dataset.from_generator`, then kept as memory-mapped Arrow in a cache folder keyed by the input
files (paths, sizes, modification times) and the options (`tasks/dataset_cache.py`): a second
load reads the cache and decodes nothing. Rows of the video dataset:

    video_index       int32
    video_filename    string
    frames            Array4D [t,3,h,w] uint8, RGB, frames 0, s, 2s, ... (s = frame_stride)
    frame_indices     List(int32) [t], index of each kept frame in the file
    num_source_frames int32, frames in the file
    masks             Array3D [t,h,w] uint8 index maps, 0 = background   (with masks only)
    mask_objects      List({object_id, color, material, shape}); index k is mask_objects[k-1]

Frames are channels-first, as the encoder takes them, which also keeps Arrow's nested-list
storage small (channels-last would store a 4-byte offset per 3-byte pixel). Read them as
tensors without widening uint8 to int64 with
`videos.with_format("torch", columns=["frames", "masks"], dtype=torch.uint8,
output_all_columns=True)`. See `question_features` for the question rows and `tasks/masks.py`
for how mask indices map to annotation object ids.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import datasets
from datasets import Array3D, Array4D, Features, List, Value
from datasets.exceptions import DatasetGenerationError

from tasks.bad_input import BadInputError, LoadReport, OnError, check_on_error, read_json
from tasks.clevrer_layout import ClevrerSplitFiles, discover_split, video_filename
from tasks.dataset_cache import cached_dataset, file_signature, fingerprint, resolve_cache_root
from tasks.masks import annotation_objects, index_maps_from_proposals
from tasks.question_records import question_records
from tasks.questions import CHOICE_ANSWERS, AnswerVocabulary, QuestionVocabulary
from tasks.video_decoding import decode_video, resize_index_maps

FORMAT_VERSION = 1  # bump when rows change, so old caches are not reused


@dataclass(frozen=True)
class VideoLoadingConfig:
    """How videos become rows."""

    frame_stride: int = 1  # keep frames 0, s, 2s, ...
    size: tuple[int, int] | None = None  # (height, width) of the stored frames; None: as in file
    with_masks: bool | None = None  # index maps from derender proposals; None: where present
    min_proposal_score: float = 0.0  # proposals scoring below this are not drawn
    on_error: OnError = "raise"  # a bad video: "raise", or "skip" it and count it
    num_proc: int | None = None  # decoding processes (None: this process)

    def __post_init__(self):
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {self.frame_stride}")
        if self.size is not None:
            if len(self.size) != 2 or min(self.size) < 1:
                raise ValueError(f"size must be (height, width) of positive ints, got {self.size}")
            object.__setattr__(self, "size", tuple(int(value) for value in self.size))
        check_on_error(self.on_error)


@dataclass(frozen=True)
class QuestionLoadingConfig:
    """How question records become rows."""

    check_videos: bool = True  # a question whose video is not in videos/{split} is bad input
    vocabulary_file: str | None = None  # None: built from questions/train.json and cached
    on_error: OnError = "raise"  # a bad record: "raise", or "skip" it and count it

    def __post_init__(self):
        check_on_error(self.on_error)


def video_features(size: tuple[int, int], with_masks: bool) -> Features:
    """Schema of the video dataset for frames of `size` = (h, w)."""
    height, width = size
    features = {
        "video_index": Value("int32"),
        "video_filename": Value("string"),
        "frames": Array4D(shape=(None, 3, height, width), dtype="uint8"),
        "frame_indices": List(Value("int32")),
        "num_source_frames": Value("int32"),
    }
    if with_masks:
        features["masks"] = Array3D(shape=(None, height, width), dtype="uint8")
        features["mask_objects"] = List(
            {
                "object_id": Value("int32"),
                "color": Value("string"),
                "material": Value("string"),
                "shape": Value("string"),
            }
        )
    return Features(features)


def question_features() -> Features:
    """Schema of the question dataset: one row per question.

    Descriptive questions have `answer` / `answer_label` (index in `AnswerVocabulary`) and no
    choices; multiple-choice questions have choices, `choice_labels` 1 correct / 0 wrong, and
    `answer` None / `answer_label` -1. In the test split every label is -1 and answers None.
    Token ids are not padded or truncated (see `tasks/collate.py`).
    """
    return Features(
        {
            "video_index": Value("int32"),
            "video_filename": Value("string"),
            "question_id": Value("int32"),
            "question": Value("string"),
            "question_type": Value("string"),
            "question_subtype": Value("string"),
            "program": List(Value("string")),
            "question_tokens": List(Value("int32")),
            "answer": Value("string"),
            "answer_label": Value("int32"),
            "choice_ids": List(Value("int32")),
            "choices": List(Value("string")),
            "choice_programs": List(List(Value("string"))),
            "choice_tokens": List(List(Value("int32"))),
            "choice_labels": List(Value("int8")),
        }
    )


def load_clevrer_videos(
    root: str | Path,
    split: str,
    config: VideoLoadingConfig = VideoLoadingConfig(),
    cache_dir: str | Path | None = None,
    report: LoadReport | None = None,
) -> datasets.Dataset:
    """The videos of `split` as a memory-mapped dataset (schema in the module docstring).

    Skipped videos (with `on_error="skip"`) are counted and printed, and added to `report`
    if one is given.
    """
    files = discover_split(root, split)
    if not files.videos:
        raise BadInputError(f"no videos found under {files.root / 'videos' / split}")
    # a video with an annotation but no mp4 is missing from the download: bad input
    video_indices = sorted(set(files.videos) | set(files.annotations))
    with_masks = config.with_masks
    if with_masks is None:
        with_masks = any(index in files.proposals for index in files.videos)
    use_annotations = with_masks and bool(files.annotations)
    size = tuple(config.size) if config.size is not None else _probe_size(files)
    signed = list(files.videos.values())
    if with_masks:
        signed += [files.proposals[i] for i in files.videos if i in files.proposals]
    if use_annotations:
        signed += [files.annotations[i] for i in files.videos if i in files.annotations]
    key = {
        "kind": "clevrer-videos",
        "version": FORMAT_VERSION,
        "root": str(files.root),
        "split": split,
        "files": [file_signature(path, files.root) for path in signed],
        "videos": fingerprint({"videos": video_indices}),
        "frame_stride": config.frame_stride,
        "size": list(size),
        "with_masks": with_masks,
        "min_proposal_score": config.min_proposal_score,
        "on_error": config.on_error,
    }

    def build(scratch: Path) -> tuple[datasets.Dataset, LoadReport]:
        dataset = _from_generator(
            _video_rows,
            features=video_features(size, with_masks),
            cache_dir=str(scratch / "generator"),
            gen_kwargs={
                "video_indices": video_indices,
                "files": files,
                "config": config,
                "size": size,
                "with_masks": with_masks,
                "use_annotations": use_annotations,
                "report_folder": str(scratch),
            },
            num_proc=config.num_proc,
            fingerprint=fingerprint(key),
            split=split,
        )
        return dataset, _collect_reports(scratch)

    cache_root = resolve_cache_root(cache_dir)
    dataset, build_report, _ = cached_dataset(cache_root, f"clevrer-videos-{split}", key, build)
    _finish_report(build_report, report, config.on_error, f"CLEVRER {split} videos")
    return dataset


def clevrer_vocabulary(
    root: str | Path, vocabulary_file: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> QuestionVocabulary:
    """The question vocabulary: loaded from `vocabulary_file` if it exists, else built from the
    questions and choices of `questions/train.json` and saved to `vocabulary_file` (by default a
    file in the cache folder keyed by the training questions)."""
    if vocabulary_file is not None and Path(vocabulary_file).is_file():
        return QuestionVocabulary.load(vocabulary_file)
    train = discover_split(root, "train")
    if train.questions is None:
        raise BadInputError(
            f"no {train.root / 'questions' / 'train.json'} to build the question vocabulary "
            "from; pass vocabulary_file"
        )
    if vocabulary_file is None:
        cache_root = resolve_cache_root(cache_dir)
        signature = {"train": file_signature(train.questions, train.root), "root": str(train.root)}
        vocabulary_file = cache_root / f"clevrer-vocabulary-{fingerprint(signature)}.json"
        if vocabulary_file.is_file():
            return QuestionVocabulary.load(vocabulary_file)
    # malformed records are reported when their split is loaded, not here
    records = list(question_records(train.questions, "train", "skip", LoadReport()))
    vocabulary = QuestionVocabulary.build(
        [record.question for record in records]
        + [choice for record in records for choice in record.choices]
    )
    vocabulary.save(vocabulary_file)
    return vocabulary


def load_clevrer_questions(
    root: str | Path,
    split: str,
    config: QuestionLoadingConfig = QuestionLoadingConfig(),
    cache_dir: str | Path | None = None,
    report: LoadReport | None = None,
) -> datasets.Dataset:
    """The questions of `split`, one row per question (schema: `question_features`)."""
    files = discover_split(root, split)
    if files.questions is None:
        raise BadInputError(f"question file {files.root / 'questions' / f'{split}.json'} missing")
    if config.check_videos and not files.videos:
        raise BadInputError(
            f"no videos under {files.root / 'videos' / split} to check the questions against; "
            "pass check_videos=False to load questions without videos"
        )
    vocabulary = clevrer_vocabulary(root, config.vocabulary_file, cache_dir)
    known_videos = tuple(files.videos) if config.check_videos else None
    key = {
        "kind": "clevrer-questions",
        "version": FORMAT_VERSION,
        "root": str(files.root),
        "split": split,
        "questions": file_signature(files.questions, files.root),
        "videos": fingerprint({"videos": known_videos}),
        "vocabulary": vocabulary.tokens,
        "on_error": config.on_error,
    }

    def build(scratch: Path) -> tuple[datasets.Dataset, LoadReport]:
        dataset = _from_generator(
            _question_rows,
            features=question_features(),
            cache_dir=str(scratch / "generator"),
            gen_kwargs={
                "path": str(files.questions),
                "split": split,
                "on_error": config.on_error,
                "vocabulary": vocabulary,
                "known_videos": known_videos,
                "report_folder": str(scratch),
            },
            fingerprint=fingerprint(key),
            split=split,
        )
        return dataset, _collect_reports(scratch)

    cache_root = resolve_cache_root(cache_dir)
    dataset, build_report, _ = cached_dataset(
        cache_root, f"clevrer-questions-{split}", key, build
    )
    _finish_report(build_report, report, config.on_error, f"CLEVRER {split} questions")
    return dataset


def _video_rows(
    video_indices: list[int],
    files: ClevrerSplitFiles,
    config: VideoLoadingConfig,
    size: tuple[int, int],
    with_masks: bool,
    use_annotations: bool,
    report_folder: str,
) -> Iterator[dict]:
    report = LoadReport()
    try:
        for video_index in video_indices:
            try:
                row = _video_row(video_index, files, config, size, with_masks, use_annotations)
            except BadInputError as error:
                if config.on_error == "raise":
                    raise
                report.record("video", video_filename(video_index), str(error))
                continue
            yield row
    finally:
        _save_worker_report(report, report_folder)


def _video_row(
    video_index: int,
    files: ClevrerSplitFiles,
    config: VideoLoadingConfig,
    size: tuple[int, int],
    with_masks: bool,
    use_annotations: bool,
) -> dict:
    path = files.videos.get(video_index)
    if path is None:
        raise BadInputError(
            f"{video_filename(video_index)} is missing from {files.root / 'videos' / files.split}"
            f" (its annotation {files.annotations[video_index]} exists)"
        )
    decoded = decode_video(path, config.frame_stride, size if config.size is not None else None)
    if config.size is None and decoded.source_size != size:
        raise BadInputError(
            f"video file {path} has frames of {list(decoded.source_size)} (height, width), the "
            f"other videos {list(size)}; pass a size to resize them all"
        )
    row = {
        "video_index": video_index,
        "video_filename": video_filename(video_index),
        "frames": decoded.frames,
        "frame_indices": decoded.frame_indices,
        "num_source_frames": decoded.num_source_frames,
    }
    if not with_masks:
        return row
    if video_index not in files.proposals:
        raise BadInputError(f"no derender proposal file for video {video_index} ({path})")
    known_objects = None
    if use_annotations:
        if video_index not in files.annotations:
            raise BadInputError(f"no annotation file for video {video_index} ({path})")
        annotation_path = files.annotations[video_index]
        known_objects = annotation_objects(read_json(annotation_path), str(annotation_path))
    proposal_path = files.proposals[video_index]
    index_maps, objects = index_maps_from_proposals(
        read_json(proposal_path), decoded.frame_indices.tolist(), decoded.source_size,
        known_objects, str(proposal_path), config.min_proposal_score,
    )
    if decoded.source_size != tuple(size):
        index_maps = resize_index_maps(index_maps, size)
    row["masks"] = index_maps
    row["mask_objects"] = [asdict(item) for item in objects]
    return row


def _question_rows(
    path: str,
    split: str,
    on_error: OnError,
    vocabulary: QuestionVocabulary,
    known_videos: tuple[int, ...] | None,
    report_folder: str,
) -> Iterator[dict]:
    report = LoadReport()
    answers = AnswerVocabulary()
    known = set(known_videos) if known_videos is not None else None
    has_answers = split != "test"
    try:
        for record in question_records(path, split, on_error, report):
            if known is not None and record.video_index not in known:
                message = (
                    f"question {record.question_id} names {record.video_filename}, which is not "
                    f"in videos/{split}"
                )
                if on_error == "raise":
                    raise BadInputError(f"{path} scene_index {record.video_index}: {message}")
                report.record("question", f"{path} scene_index {record.video_index}", message)
                continue
            yield {
                "video_index": record.video_index,
                "video_filename": record.video_filename,
                "question_id": record.question_id,
                "question": record.question,
                "question_type": record.question_type,
                "question_subtype": record.question_subtype,
                "program": record.program,
                "question_tokens": vocabulary.encode(record.question),
                "answer": record.answer,
                "answer_label": answers.encode(record.answer) if record.answer else -1,
                "choice_ids": record.choice_ids,
                "choices": record.choices,
                "choice_programs": record.choice_programs,
                "choice_tokens": [vocabulary.encode(choice) for choice in record.choices],
                "choice_labels": [
                    CHOICE_ANSWERS[answer] if has_answers else -1
                    for answer in record.choice_answers
                ],
            }
    finally:
        _save_worker_report(report, report_folder)


def _from_generator(generator, **kwargs) -> datasets.Dataset:
    """`Dataset.from_generator`, re-raising our BadInputError rather than datasets' wrapper."""
    if (kwargs.get("num_proc") or 1) > 1:
        # finalise unreachable PyAV decoders before forking: freeing a threaded decoder
        # inherited from the parent deadlocks the child
        gc.collect()
    try:
        return datasets.Dataset.from_generator(generator, **kwargs)
    except DatasetGenerationError as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, BadInputError):
            cause = cause.__cause__
        if cause is None:
            raise
    try:
        raise cause from None
    finally:
        cause = None  # no cycle (traceback -> this frame -> cause) keeping frames alive


def _probe_size(files: ClevrerSplitFiles) -> tuple[int, int]:
    """(height, width) of the first video whose header can be read."""
    for path in files.videos.values():
        try:
            with av.open(str(path)) as container:
                context = container.streams.video[0].codec_context
                return (context.height, context.width)
        except (av.error.FFmpegError, IndexError):
            continue
    raise BadInputError(f"no readable video under {files.root / 'videos' / files.split}")


def _save_worker_report(report: LoadReport, folder: str) -> None:
    report.save(Path(folder) / f"skipped-{os.getpid()}-{uuid.uuid4().hex[:8]}.json")


def _collect_reports(folder: Path) -> LoadReport:
    report = LoadReport()
    for path in sorted(folder.glob("skipped-*.json")):
        report.extend(LoadReport.load(path))
    return report


def _finish_report(
    build_report: LoadReport, report: LoadReport | None, on_error: OnError, what: str
) -> None:
    if report is not None:
        report.extend(build_report)
    if on_error == "skip":
        print(build_report.summary(what))
