"""CLEVRER-sim throughput: videos/s for one process and for all cores, side by side, at the
default size (64×64, 128 frames), the time per stage of one video, and the answer balance of
the generated set. CPU seconds per video are printed too: on a shared machine the wall-clock
rate depends on the other load (printed as the load average), the CPU cost does not.

    python benchmarks/clevrer_sim.py [--videos 16] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import pybullet

from tasks.clevrer_sim.balance import text_only_baseline
from tasks.clevrer_sim.config import SimConfig
from tasks.clevrer_sim.dataset import (
    annotation,
    camera_for,
    generate_dataset,
    question_pool,
    simulate_video,
)
from tasks.clevrer_sim.layout import SPLITS, Layout
from tasks.clevrer_sim.render import render_video
from tasks.clevrer_sim.writer import proposal_record, write_json, write_video


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def stage_times(config: SimConfig, indices: range, folder: Path) -> dict[str, float]:
    """Mean wall seconds per video of each stage, in this process."""
    totals: dict[str, float] = {}

    def timed(name, function, *arguments):
        start = time.perf_counter()
        result = function(*arguments)
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
        return result

    for index in indices:
        video = timed("simulate (scene draws + counterfactuals)", simulate_video, config, index)
        frames, masks = timed(
            "render",
            render_video,
            camera_for(config),
            video.scene,
            video.trajectory,
            config.num_frames,
        )
        timed("encode mp4", write_video, folder / f"{index}.mp4", frames, config.fps)
        record = timed("annotation", annotation, config, index, video)
        timed("annotation json", write_json, folder / f"a{index}.json", record)
        proposal = timed("proposal masks (RLE)", proposal_record, index, video.scene, masks)
        timed("proposal json", write_json, folder / f"p{index}.json", proposal)
        timed("question pool", question_pool, config, index, video)
    return {name: seconds / len(indices) for name, seconds in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16, help="videos per run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    arguments = parser.parse_args()
    config = SimConfig(num_videos=arguments.videos)
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; python {platform.python_version()}, "
        f"pybullet API {pybullet.getAPIVersion()}"
    )
    print(
        f"config: {config.width}x{config.height}, {config.num_frames} frames "
        f"(+{config.future_frames} simulated), {config.min_objects}-{config.max_objects} objects"
    )

    with tempfile.TemporaryDirectory() as folder:
        stages = stage_times(config, range(2), Path(folder))
    print(f"\nwall seconds per video, one process (load average {_load()}):")
    for name, seconds in stages.items():
        print(f"  {name:<42} {seconds:6.3f}")
    print(f"  {'total':<42} {sum(stages.values()):6.3f}")

    rates, cpu = {}, {}
    summary = None
    for workers in (1, arguments.workers):
        before = _cpu_seconds()
        with tempfile.TemporaryDirectory() as folder:
            summary = generate_dataset(config, folder, workers=workers, progress=False)
            rates[workers] = summary.videos_per_second
            splits = {s: json.loads(Layout(Path(folder)).questions(s).read_text()) for s in SPLITS}
        cpu[workers] = (_cpu_seconds() - before) / arguments.videos
    print(f"\nload average while measuring: {_load()}")
    print(f"{'processes':>9} {'videos':>7} {'videos/s':>9} {'speed-up':>9} {'CPU s/video':>12}")
    for workers, rate in rates.items():
        print(
            f"{workers:>9} {arguments.videos:>7} {rate:>9.3f} {rate / rates[1]:>8.2f}x "
            f"{cpu[workers]:>12.3f}"
        )

    train = [q for scene in splits["train"] for q in scene["questions"]]
    validation = [q for scene in splits["validation"] for q in scene["questions"]]
    print(
        "\nanswering from the text alone (majority per question/option text, train → validation):"
    )
    for kind, accuracy in text_only_baseline(train, validation).items():
        print(f"  {kind:<28} {accuracy:.3f}")

    print(f"\nanswer balance of the {arguments.videos} generated videos (all splits):")
    print(f"{'split':<11} {'question type':<28} {'questions':>9} {'majority':>9} {'rate':>6}")
    for split, statistics in summary.statistics.items():
        for row in statistics.table():
            print(
                f"{split:<11} {row['type']:<28} {row['questions']:>9} "
                f"{row['majority_answer']:>9} {row['majority_rate']:>6.3f}"
            )


if __name__ == "__main__":
    main()
