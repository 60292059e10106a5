"""Data-layer figures: video decoding throughput, and the streaming question/slot join against
a SlotFormer-style load of every video's slots from one pickle.

    python benchmarks/data.py                          # 1k and 10k videos (a few minutes)
    python benchmarks/data.py --videos 1000 --decode-videos 2

Each slot-loading case runs in a fresh subprocess, so its peak memory is its own: peak resident
memory (VmHWM, which counts the pages of memory-mapped files that were read; those are page
cache, shared by every process and reclaimable) and peak anonymous memory (RssAnon: what the
process alone holds, sampled every batch). Both loaders feed the same collator, batch 64,
shuffled (the join: shards of 8 videos in random order + a 1,000-row buffer; the pickle: a
random permutation), for one epoch of every question.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402
import datasets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from tasks.clevrer import (  # noqa: E402
    VideoLoadingConfig,
    load_clevrer_videos,
    question_features,
)
from tasks.collate import QuestionCollator  # noqa: E402
from tasks.question_slots import JoinConfig, QuestionSlotStream  # noqa: E402
from tasks.slots import SlotProvenance, SlotShardWriter, SlotSpec, load_slots  # noqa: E402
from tasks.video_decoding import decode_video  # noqa: E402

BATCH_SIZE = 64
QUESTION_TYPES = ["descriptive"] * 72 + ["explanatory"] * 11 + ["counterfactual"] * 12 + [
    "predictive"] * 5  # CLEVRER's training shares


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{model}, {len(os.sched_getaffinity(0))} cores, {memory:.0f} GiB; python "
            f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()}"
            f" threads), datasets {datasets.__version__}, PyAV {av.__version__}")


# ---------------------------------------------------------------------------- video decoding

def write_clevrer_like_video(path: Path, seed: int, num_frames: int = 128) -> None:
    """A 480x320, 25 fps, yuv420p H.264 clip (as CLEVRER's): a textured floor and 5 objects."""
    generator = np.random.default_rng(seed)
    floor = (110 + generator.normal(0, 6, (320, 480, 1))).clip(0, 255)
    floor = np.repeat(floor, 3, axis=2).astype(np.uint8)
    starts = generator.integers(0, [260, 420], size=(5, 2))
    velocities = generator.integers(-2, 3, size=(5, 2))
    colors = generator.integers(30, 230, size=(5, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width, stream.pix_fmt = 320, 480, "yuv420p"
        for frame_index in range(num_frames):
            frame = floor.copy()
            for start, velocity, color in zip(starts, velocities, colors, strict=True):
                top, left = (start + velocity * frame_index) % [280, 440]
                frame[top:top + 40, left:left + 40] = color
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def decode_all(paths: list[Path], stride: int, size: tuple[int, int] | None) -> None:
    for path in paths:
        decode_video(path, stride, size)


def best_seconds(function, repeats: int) -> float:
    """The fastest of `repeats` timed calls (other processes may share the cores)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def decoding_figures(work: Path, num_videos: int, repeats: int) -> list[tuple[str, str]]:
    root = work / "clevrer"
    paths = [root / "videos" / "train" / "video_00000-01000" / f"video_{i:05d}.mp4"
             for i in range(num_videos)]
    for index, path in enumerate(paths):
        write_clevrer_like_video(path, index)
    lines = []
    for stride, size in [(1, None), (1, (128, 128)), (4, (128, 128))]:
        seconds = best_seconds(
            functools.partial(decode_all, paths, stride, size), repeats
        )
        kept = num_videos * len(range(0, 128, stride))
        sizes = "480x320" if size is None else f"{size[1]}x{size[0]}"
        lines.append((f"decode_video stride {stride}, {sizes}",
                      f"{num_videos * 128 / seconds:7.0f} source frames/s, "
                      f"{kept / seconds:7.0f} kept frames/s"))
    config = VideoLoadingConfig(frame_stride=1, size=(128, 128))
    seconds = best_seconds(
        lambda: load_clevrer_videos(root, "train", config, work / f"cache-{time.time()}"),
        repeats,
    )
    lines.append(("load_clevrer_videos stride 1, 128x128 (decode + Arrow write)",
                  f"{num_videos * 128 / seconds:7.0f} frames/s"))
    load_clevrer_videos(root, "train", config, work / "cache")
    start = time.perf_counter()
    videos = load_clevrer_videos(root, "train", config, work / "cache")
    lines.append(("  its second load (cache)", f"{time.perf_counter() - start:7.3f} s for "
                  f"{len(videos)} videos"))
    return lines


# ------------------------------------------------------------------- slot loading, set-up

def question_rows(num_videos: int, questions_per_video: int):
    generator = np.random.default_rng(0)
    for video_index in range(num_videos):
        for question_id in range(questions_per_video):
            question_type = QUESTION_TYPES[generator.integers(len(QUESTION_TYPES))]
            multiple_choice = question_type != "descriptive"
            num_choices = int(generator.integers(1, 5)) if multiple_choice else 0
            yield {
                "video_index": video_index, "video_filename": f"video_{video_index:05d}.mp4",
                "question_id": question_id, "question": "what is the shape of the object ?",
                "question_type": question_type,
                "question_subtype": None if multiple_choice else "query_shape",
                "program": ["objects", "unique", "query_shape"],
                "question_tokens": generator.integers(3, 80, generator.integers(8, 26)).tolist(),
                "answer": None if multiple_choice else "cube",
                "answer_label": -1 if multiple_choice else 14,
                "choice_ids": list(range(num_choices)),
                "choices": ["the cube's entrance"] * num_choices,
                "choice_programs": [["objects", "unique"]] * num_choices,
                "choice_tokens": [generator.integers(3, 80, 6).tolist()
                                  for _ in range(num_choices)],
                "choice_labels": generator.integers(0, 2, num_choices).tolist(),
            }


def prepare_slot_case(work: Path, num_videos: int, args) -> dict:
    """Write the slot dataset (Parquet shards -> Arrow), the question dataset, and the
    SlotFormer-style pickle and question JSON."""
    case = work / f"videos-{num_videos}"
    spec = SlotSpec(num_slots=args.num_slots, slot_dim=args.slot_dim, dtype="float16")
    base = np.random.default_rng(1).standard_normal((args.num_frames, spec.num_slots,
                                                     spec.slot_dim)).astype(np.float16)
    all_slots = {}
    start = time.perf_counter()
    with SlotShardWriter(case / "slots", spec, SlotProvenance("benchmark", "none", 1)) as writer:
        for video_index in range(num_videos):
            slots = base + np.float16(video_index % 64)
            writer.write(video_index, slots)
            all_slots[f"video_{video_index:05d}.mp4"] = slots
    write_seconds = time.perf_counter() - start
    start = time.perf_counter()
    load_slots(case / "slots", cache_dir=case / "hf")  # one-time Parquet -> Arrow conversion
    convert_seconds = time.perf_counter() - start
    with open(case / "slots.pkl", "wb") as file:
        pickle.dump(all_slots, file, protocol=pickle.HIGHEST_PROTOCOL)
    del all_slots
    questions = datasets.Dataset.from_generator(
        question_rows, features=question_features(), cache_dir=str(case / "generator"),
        gen_kwargs={"num_videos": num_videos, "questions_per_video": args.questions_per_video},
    )
    questions.save_to_disk(str(case / "questions"))
    with open(case / "questions.json", "w") as file:
        json.dump(questions.to_list(), file)
    shutil.rmtree(case / "generator")
    return {
        "case": str(case), "num_questions": len(questions),
        "slot_bytes": int(base.nbytes) * num_videos,
        "pickle_bytes": (case / "slots.pkl").stat().st_size,
        "parquet_bytes": sum(path.stat().st_size for path in (case / "slots").rglob("*.parquet")),
        "write_seconds": write_seconds, "convert_seconds": convert_seconds,
    }


# -------------------------------------------------------------- slot loading, one process

class SlotFormerStyleDataset(Dataset):
    """Every video's slots from one pickle, held in memory (as SlotFormer's CLEVRER VQA data)."""

    def __init__(self, questions: list[dict], video_slots: dict):
        self.questions, self.video_slots = questions, video_slots

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, index: int) -> dict:
        question = self.questions[index]
        return {**question, "slots": self.video_slots[question["video_filename"]]}


def memory() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            values[name] = int(rest.split()[0]) * 1024
    return values


def run_worker(kind: str, case: Path) -> dict:
    """One loader for one epoch; returns figures as a dict."""
    start = time.perf_counter()
    if kind == "imports":
        return {"peak_rss": memory()["VmHWM"], "peak_anonymous": memory()["RssAnon"]}
    if kind == "join":
        questions = datasets.load_from_disk(str(case / "questions"))
        slots = load_slots(case / "slots", cache_dir=case / "hf")
        stream = QuestionSlotStream(questions, slots, JoinConfig(buffer_size=1000))
        loader = DataLoader(stream, batch_size=BATCH_SIZE, collate_fn=QuestionCollator())
    else:
        with open(case / "slots.pkl", "rb") as file:
            video_slots = pickle.load(file)
        with open(case / "questions.json") as file:
            questions = json.load(file)
        loader = DataLoader(SlotFormerStyleDataset(questions, video_slots),
                            batch_size=BATCH_SIZE, shuffle=True, collate_fn=QuestionCollator())
    peak_anonymous = memory()["RssAnon"]
    samples, first_batch = 0, None
    for batch in loader:
        if first_batch is None:
            first_batch = time.perf_counter()
        samples += len(batch.video_index)
        if samples // BATCH_SIZE % 50 == 0:
            peak_anonymous = max(peak_anonymous, memory()["RssAnon"])
    end = time.perf_counter()
    peak_anonymous = max(peak_anonymous, memory()["RssAnon"])
    return {
        "samples": samples, "startup_seconds": first_batch - start,
        "samples_per_second": samples / (end - first_batch),
        "peak_rss": memory()["VmHWM"], "peak_anonymous": peak_anonymous,
    }


def in_subprocess(kind: str, case: Path) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--case", str(case)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------- main

def gib(value: float) -> str:
    return f"{value / 2**30:6.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--questions-per-video", type=int, default=20)
    parser.add_argument("--num-frames", type=int, default=128)
    parser.add_argument("--num-slots", type=int, default=7)
    parser.add_argument("--slot-dim", type=int, default=64)
    parser.add_argument("--decode-videos", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each case; the fastest is shown")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--worker", choices=["join", "pickle", "imports"], default=None)
    parser.add_argument("--case", type=Path, default=None)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(run_worker(args.worker, args.case)))
        return

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="data-benchmark-"))
    datasets.disable_progress_bars()
    print(f"Machine: {machine()}")
    print(f"Load average before starting (other processes on these cores): "
          f"{os.getloadavg()[0]:.2f}; each figure is the fastest of {args.repeats} runs")
    print(f"\nVideo decoding, {args.decode_videos} CLEVRER-like clips (128 frames, 480x320, "
          "H.264 yuv420p), one process:")
    for name, figure in decoding_figures(work / "decoding", args.decode_videos, args.repeats):
        print(f"  {name:<62} {figure}")

    print(f"\nSlots [{args.num_frames},{args.num_slots},{args.slot_dim}] float16 per video, "
          f"{args.questions_per_video} questions per video, batch {BATCH_SIZE}, one epoch, "
          "each case in its own process:")
    imports = in_subprocess("imports", work)
    print(f"  a process that only imports torch, datasets and tasks/: peak RSS "
          f"{gib(imports['peak_rss'])}, anonymous {gib(imports['peak_anonymous'])}")
    header = (f"  {'videos':>6} {'questions':>9} {'slots':>10} | {'loader':<22} {'startup':>8} "
              f"{'samples/s':>10} {'peak RSS':>11} {'peak anon':>11}")
    rows, ratios = [], []
    for num_videos in args.videos:
        prepared = prepare_slot_case(work, num_videos, args)
        case = Path(prepared["case"])
        print(f"  [{num_videos} videos: slots written to Parquet in "
              f"{prepared['write_seconds']:.1f} s ({gib(prepared['parquet_bytes'])}), converted "
              f"to Arrow in {prepared['convert_seconds']:.1f} s once; pickle "
              f"{gib(prepared['pickle_bytes'])}]")
        runs = [(kind, in_subprocess(kind, case)) for _ in range(args.repeats)
                for kind in ("pickle", "join")]
        figures = {kind: max((result for name, result in runs if name == kind),
                             key=lambda result: result["samples_per_second"])
                   for kind in ("pickle", "join")}
        for kind, name in (("pickle", "SlotFormer-style pickle"), ("join", "Arrow join (ours)")):
            result = figures[kind]
            assert result["samples"] == prepared["num_questions"], result
            rows.append(f"  {num_videos:>6} {prepared['num_questions']:>9} "
                        f"{gib(prepared['slot_bytes'])} | {name:<22} "
                        f"{result['startup_seconds']:7.2f}s {result['samples_per_second']:10.0f} "
                        f"{gib(result['peak_rss'])} {gib(result['peak_anonymous'])}")
        pickle_result, join_result = figures["pickle"], figures["join"]
        ratios.append(
            f"  {num_videos:>6} videos: join/pickle throughput "
            f"{join_result['samples_per_second'] / pickle_result['samples_per_second']:.2f}x, "
            f"pickle/join peak RSS "
            f"{pickle_result['peak_rss'] / join_result['peak_rss']:.2f}x, pickle/join peak "
            f"anonymous memory "
            f"{pickle_result['peak_anonymous'] / join_result['peak_anonymous']:.2f}x, startup "
            f"{pickle_result['startup_seconds']:.2f}s vs {join_result['startup_seconds']:.2f}s"
        )
        shutil.rmtree(case)
    print(header)
    print("\n".join(rows))
    print("Ratios:")
    print("\n".join(ratios))
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
