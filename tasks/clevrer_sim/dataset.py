"""Making a CLEVRER-sim dataset: one video end to end, then all of them in parallel, then the
question files.

Video i draws only from (seed, i), in a fresh physics client, so any number of worker processes
writes the same bytes. A video is finished when all its files exist (each written atomically);
a rerun skips finished videos and rebuilds the question files from the per-video question pools.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tasks.clevrer_sim.balance import AnswerStatistics, QuestionSelector, public
from tasks.clevrer_sim.camera import Camera
from tasks.clevrer_sim.config import SimConfig
from tasks.clevrer_sim.events import (
    Event,
    EventLog,
    build_event_log,
    counterfactual_collisions,
    scene_problem,
)
from tasks.clevrer_sim.layout import SPLITS, Layout, split_of, split_ranges, video_filename
from tasks.clevrer_sim.physics import Trajectory, simulate
from tasks.clevrer_sim.questions import VideoFacts, generate_candidates
from tasks.clevrer_sim.render import render_video
from tasks.clevrer_sim.scene import Scene, sample_scene
from tasks.clevrer_sim.writer import annotation_record, proposal_record, write_json, write_video

MAX_SCENE_DRAWS = 500
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SimulatedVideo:
    """One accepted scene and everything simulated about it."""

    scene: Scene
    trajectory: Trajectory
    """Clip plus future frames."""
    log: EventLog
    counterfactual: dict[int, list[Event]]
    """Removed object_id → collisions within the clip's frames without it."""


def camera_for(config: SimConfig) -> Camera:
    return Camera(config.width, config.height, fov_degrees=config.field_of_view)


def simulate_video(config: SimConfig, index: int) -> SimulatedVideo:
    """Draw scenes for video `index` until one passes `events.scene_problem`, then re-simulate
    it once per removed object."""
    rng = np.random.default_rng([config.seed, index, 0])
    camera = camera_for(config)
    clip_seconds = config.num_frames / config.fps
    future_seconds = config.future_frames / config.fps
    total_frames = config.num_frames + config.future_frames
    for _ in range(MAX_SCENE_DRAWS):
        num_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
        scene = sample_scene(rng, camera, num_objects, clip_seconds, future_seconds)
        if scene is None:
            continue
        trajectory = simulate(scene, total_frames, config.fps)
        log = build_event_log(trajectory, camera, config.num_frames)
        if scene_problem(trajectory, log, camera) is None:
            break
    else:
        raise RuntimeError(f"video {index}: no usable scene in {MAX_SCENE_DRAWS} draws")
    counterfactual = {
        state.object_id: counterfactual_collisions(
            simulate(scene.without(state.object_id), config.num_frames, config.fps),
            config.num_frames,
        )
        for state in scene.objects
    }
    return SimulatedVideo(scene, trajectory, log, counterfactual)


def annotation(config: SimConfig, index: int, video: SimulatedVideo) -> dict:
    """The video's annotation record (CLEVRER's annotation file, `writer.annotation_record`)."""
    return annotation_record(
        index,
        video.scene,
        video.trajectory,
        video.log.inside,
        video.log.collisions,
        video.log.unseen_collisions,
        video.counterfactual,
        config.future_frames,
    )


def question_pool(config: SimConfig, index: int, video: SimulatedVideo) -> dict:
    """Every candidate question about the video, with answers (CLEVRER-sim's own record)."""
    facts = VideoFacts(
        objects=video.scene.objects,
        log=video.log,
        counterfactual_pairs={
            removed: frozenset(e.objects for e in events)
            for removed, events in video.counterfactual.items()
        },
    )
    rng = np.random.default_rng([config.seed, index, 1])
    candidates = generate_candidates(facts, rng)
    return {
        "scene_index": index,
        "video_filename": video_filename(index),
        "candidates": [c.to_dict() for c in candidates],
    }


def is_finished(layout: Layout, split: str, index: int) -> bool:
    return all(path.exists() for path in layout.video_files(split, index))


def generate_video(config: SimConfig, layout: Layout, index: int) -> bool:
    """Write every file of video `index`; returns False if it was already finished."""
    split = split_of(index, split_ranges(config.num_videos))
    if is_finished(layout, split, index):
        return False
    video = simulate_video(config, index)
    frames, masks = render_video(
        camera_for(config), video.scene, video.trajectory, config.num_frames
    )
    write_video(layout.video(split, index), frames, config.fps, config.pixel_format)
    write_json(layout.annotation(split, index), annotation(config, index, video))
    write_json(layout.proposal(index), proposal_record(index, video.scene, masks))
    # The pool last: its presence is the mark of a finished video.
    write_json(layout.question_pool(index), question_pool(config, index, video))
    return True


def _generate_in_worker(arguments: tuple[dict, str, int]) -> int:
    config_fields, root, index = arguments
    generate_video(SimConfig.from_dict(config_fields), Layout(Path(root)), index)
    return index


@dataclass
class DatasetSummary:
    """What a `generate_dataset` call did."""

    root: Path
    generated: int
    """Videos generated by this call (finished ones are skipped)."""
    seconds: float
    """Wall time of the video generation (not the question assembly)."""
    workers: int
    statistics: dict[str, AnswerStatistics] = field(default_factory=dict)
    """Split → answer statistics of its questions."""

    @property
    def videos_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def _prepare(config: SimConfig, layout: Layout) -> None:
    """Create the root, check it is writable, remove temporary files left by an interrupted run,
    and check or write the manifest."""
    try:
        layout.root.mkdir(parents=True, exist_ok=True)
        probe = layout.root / f".write_test_{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"output directory {layout.root} is not writable: {error}") from error
    # Temporary files of an interrupted run (one run per directory at a time).
    for stale in layout.root.rglob(".*.tmp"):
        stale.unlink()
    manifest_path = layout.manifest()
    if manifest_path.exists():
        existing = SimConfig.from_dict(json.loads(manifest_path.read_text())["config"]).to_dict()
        wanted = config.to_dict()
        if existing != wanted:
            differing = sorted(k for k in wanted if existing[k] != wanted[k])
            raise ValueError(
                f"{layout.root} holds a CLEVRER-sim dataset made with another config (differs in "
                f"{differing}); use another directory or the same settings to resume"
            )
        return
    write_json(manifest_path, _manifest(config), indent=2)


def _manifest(config: SimConfig, statistics: dict[str, AnswerStatistics] | None = None) -> dict:
    ranges = split_ranges(config.num_videos)
    manifest = {
        "generator": "clevrer_sim",
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "splits": {split: [r.start, r.stop] for split, r in ranges.items()},
    }
    if statistics is not None:
        manifest["answer_balance"] = {split: s.table() for split, s in statistics.items()}
    return manifest


def assemble_questions(config: SimConfig, layout: Layout) -> dict[str, AnswerStatistics]:
    """Select questions from every video's pool and write `questions/{split}.json` (test without
    answers) and `sim/test_answers.json`. Returns answer statistics per split."""
    statistics = {}
    for seed_key, (split, indices) in enumerate(split_ranges(config.num_videos).items()):
        selector = QuestionSelector(config, seed_key)
        stats = AnswerStatistics()
        scenes = []
        for index in indices:
            pool = json.loads(layout.question_pool(index).read_text())
            questions = selector.select(pool["candidates"])
            for question in questions:
                stats.add(question)
            scenes.append(
                {
                    "scene_index": index,
                    "video_filename": video_filename(index),
                    "questions": [public(q) for q in questions],
                }
            )
        statistics[split] = stats
        if split == "test":
            write_json(layout.test_answers(), [_submission_entry(scene) for scene in scenes])
            scenes = [_without_answers(scene) for scene in scenes]
        write_json(layout.questions(split), scenes)
    return statistics


def _submission_entry(scene: dict) -> dict:
    """A scene's answers in the challenge submission format."""
    questions = []
    for question in scene["questions"]:
        if question["question_type"] == "descriptive":
            questions.append({"question_id": question["question_id"], "answer": question["answer"]})
        else:
            questions.append(
                {
                    "question_id": question["question_id"],
                    "choices": [
                        {"choice_id": c["choice_id"], "answer": c["answer"]}
                        for c in question["choices"]
                    ],
                }
            )
    return {"scene_index": scene["scene_index"], "questions": questions}


def _without_answers(scene: dict) -> dict:
    questions = []
    for question in scene["questions"]:
        question = {k: v for k, v in question.items() if k != "answer"}
        if "choices" in question:
            question["choices"] = [
                {k: v for k, v in c.items() if k != "answer"} for c in question["choices"]
            ]
        questions.append(question)
    return {**scene, "questions": questions}


def generate_dataset(
    config: SimConfig, root: str | Path, workers: int = 1, progress: bool = True
) -> DatasetSummary:
    """Generate (or finish) the dataset described by `config` under `root`."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    layout = Layout(Path(root))
    _prepare(config, layout)
    ranges = split_ranges(config.num_videos)
    pending = [
        i for i in range(config.num_videos) if not is_finished(layout, split_of(i, ranges), i)
    ]
    bar = tqdm(
        total=config.num_videos,
        initial=config.num_videos - len(pending),
        desc="CLEVRER-sim videos",
        unit="video",
        disable=not progress,
    )
    start = time.perf_counter()
    if workers == 1 or len(pending) <= 1:
        for index in pending:
            generate_video(config, layout, index)
            bar.update()
    else:
        jobs = [(config.to_dict(), str(layout.root), i) for i in pending]
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers) as pool:
            for _ in pool.imap_unordered(_generate_in_worker, jobs):
                bar.update()
    seconds = time.perf_counter() - start
    bar.close()
    statistics = assemble_questions(config, layout)
    write_json(layout.manifest(), _manifest(config, statistics), indent=2)
    return DatasetSummary(layout.root, len(pending), seconds, workers, statistics)


def splits_present(root: str | Path) -> dict[str, range]:
    """The split index ranges of a CLEVRER-sim dataset, read from its manifest."""
    manifest = json.loads(Layout(Path(root)).manifest().read_text())
    return {split: range(*manifest["splits"][split]) for split in SPLITS}
