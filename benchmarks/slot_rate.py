"""Slot extraction frames/s of saved encoders, side by side on the same videos.

Each encoder encodes the same random videos (eval mode, `torch.inference_mode`, no decoder, whole
clips); the rounds alternate between encoders so a busy machine slows them alike, and the best
round counts. Use it to see what an encoder's settings cost, e.g. 3 iterations on every frame
against 1 (copy an encoder folder and set `num_iterations_later` in its config.json).

    python benchmarks/slot_rate.py --encoders models/clevrer_sim_small OTHER [--videos 8]
        [--frames 16] [--rounds 3] [--threads 1]
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import describe_machine  # noqa: E402
from ocl.modeling import SmoothSAModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoders", nargs="+", required=True, help="save_pretrained folders")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoders = {path: SmoothSAModel.from_pretrained(path).eval() for path in args.encoders}
    sizes = {tuple(model.config.image_size) for model in encoders.values()}
    if len(sizes) != 1:
        raise ValueError(f"the encoders read different image sizes: {sorted(sizes)}")
    video = torch.rand(args.videos, args.frames, 3, *sizes.pop(),
                       generator=torch.Generator().manual_seed(0))
    best = dict.fromkeys(encoders, float("inf"))
    with torch.inference_mode():
        for _ in range(args.rounds):
            for path, model in encoders.items():
                start = time.perf_counter()
                model(video, generator=torch.Generator().manual_seed(0), decode=False)
                best[path] = min(best[path], time.perf_counter() - start)
    print(describe_machine())
    print(f"{args.videos} videos x {args.frames} frames, {args.threads} thread(s), best of "
          f"{args.rounds} rounds")
    first = next(iter(best))
    print(f"{'encoder':<48}{'frames/s':>10}{'vs first':>10}")
    for path, seconds in best.items():
        rate = args.videos * args.frames / seconds
        print(f"{path:<48}{rate:>10.1f}{best[first] / seconds:>10.2f}")


if __name__ == "__main__":
    main()
