"""Command line: `python -m tasks.clevrer_sim --out DIR --videos N [--frames --size --seed ...]`.

Generates (or resumes) a CLEVRER-format dataset under DIR, prints videos/s and the answer balance
(majority-answer rate per question type), and with `--check` re-derives every answer with the
independent checker.
"""

from __future__ import annotations

import argparse
import os
import sys

from tasks.clevrer_sim.checker import check_dataset
from tasks.clevrer_sim.config import PIXEL_FORMATS, SimConfig, parse_size
from tasks.clevrer_sim.dataset import generate_dataset


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.clevrer_sim",
        description="Generate CLEVRER-format physics videos with questions, offline.",
    )
    parser.add_argument("--out", required=True, help="output directory (created; resumable)")
    parser.add_argument("--videos", type=int, required=True, help="number of videos")
    defaults = SimConfig  # its fields' defaults
    parser.add_argument("--frames", type=int, default=defaults.num_frames,
                        help=f"frames per video (default {defaults.num_frames})")
    parser.add_argument("--future-frames", type=int, default=defaults.future_frames,
                        help="frames simulated after the clip")
    parser.add_argument("--size", default="64", help="frame size: N or WxH (default 64)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"dataset seed (default {defaults.seed})")
    parser.add_argument(
        "--field-of-view", type=float, default=defaults.field_of_view,
        help=f"camera's vertical field of view, degrees (default {defaults.field_of_view:g}; "
        "narrower: larger objects)",
    )
    parser.add_argument(
        "--pixel-format", choices=PIXEL_FORMATS, default=defaults.pixel_format,
        help=f"the videos' H.264 pixel format (default {defaults.pixel_format}: colour at every "
        "pixel; yuv420p halves its resolution, as CLEVRER's own videos do)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--min-objects", type=int, default=defaults.min_objects)
    parser.add_argument("--max-objects", type=int, default=defaults.max_objects)
    parser.add_argument("--check", action="store_true", help="re-derive every answer afterwards")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        width, height = parse_size(arguments.size)
        config = SimConfig(
            num_videos=arguments.videos,
            num_frames=arguments.frames,
            future_frames=arguments.future_frames,
            width=width,
            height=height,
            seed=arguments.seed,
            field_of_view=arguments.field_of_view,
            pixel_format=arguments.pixel_format,
            min_objects=arguments.min_objects,
            max_objects=arguments.max_objects,
        )
        summary = generate_dataset(config, arguments.out, arguments.workers, not arguments.quiet)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"\n{summary.generated} videos generated in {summary.seconds:.1f} s "
        f"({summary.videos_per_second:.2f} videos/s, {summary.workers} workers) → {summary.root}"
    )
    print(f"\n{'split':<11} {'question type':<28} {'questions':>9} {'majority':>10} {'rate':>6}")
    for split, statistics in summary.statistics.items():
        for row in statistics.table():
            print(
                f"{split:<11} {row['type']:<28} {row['questions']:>9} "
                f"{row['majority_answer']:>10} {row['majority_rate']:>6.3f}"
            )
    if arguments.check:
        report = check_dataset(arguments.out)
        print(
            f"\nchecker: {report.questions} questions, {report.choices} choices, "
            f"{len(report.mismatches)} disagreements"
        )
        for line in report.mismatches[:20]:
            print("  " + line)
        if not report.agrees:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
