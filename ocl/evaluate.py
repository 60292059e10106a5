"""Object discovery of trained encoders on held-out videos, beside fixed-grid baselines.

    python -m ocl.evaluate --encoders runs/a/encoder runs/b/encoder --data DIR [--untrained]

Each encoder segments the first `--frames` frames of `--videos` held-out videos (argmax over
slots of its upsampled decoder masks); ARI, FG-ARI, mBO and mIoU are computed per video over
the whole spatio-temporal volume, next to the same metrics for fixed grid splits (2x2, 3x3,
4 horizontal and 4 vertical stripes). Beside them, where the objects' pixels went
(`ocl.metrics.pixel_shares`): kept by one segment, taken by the background's, or split; the
background pixels the objects' segments took per object pixel, which FG-ARI does not see; and
what the taken and the split pixels cost: FG-ARI with either handed back to the segment keeping
the object, and with only the taken pixels on the objects' outlines handed back
(`ocl.metrics.fg_ari_repairs`); and the shares kept and taken over the entering
objects alone, those absent from each video's first frame.
`--untrained` adds each encoder's config with fresh random weights. Prints the table and
writes it to `--out` as JSON.
"""

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ocl.metrics import FIXED_GRID_BASELINES, attention_to_segmentation, object_discovery_metrics
from ocl.modeling import SmoothSAModel
from ocl.video_data import FirstFrames
from tasks.clevrer import VideoLoadingConfig, load_clevrer_videos


@dataclass
class DiscoveryScores:
    """Mean per-video scores of one segmenter, and its speed (encoders only)."""

    ari: float
    fg_ari: float
    mbo: float
    miou: float
    kept: float
    background: float
    split: float
    merged: float
    background_claimed: float
    fg_ari_background_returned: float
    fg_ari_split_returned: float
    fg_ari_outline_returned: float
    entering_kept: float
    entering_background: float
    entering_split: float
    entering_merged: float
    frames_per_second: float | None = None


@torch.no_grad()
def score_encoder(
    model: SmoothSAModel, loader: DataLoader, mask_source: str = "decoder", seed: int = 0
) -> DiscoveryScores:
    """Discovery metrics of `model` on batches of `{"frames", "masks"}`."""
    model.eval()
    metrics = object_discovery_metrics(pixel_shares=True, entering_objects=True)
    frames_seen, seconds = 0, 0.0
    for index, batch in enumerate(tqdm(loader, desc="encoding", leave=False)):
        start = time.perf_counter()
        output = model(batch["frames"], generator=torch.Generator().manual_seed(seed + index),
                       decode=mask_source == "decoder")
        seconds += time.perf_counter() - start
        frames_seen += batch["frames"].shape[0] * batch["frames"].shape[1]
        masks = output.decoder_attention if mask_source == "decoder" else output.attention
        metrics.update(attention_to_segmentation(masks, tuple(batch["masks"].shape[-2:])),
                       batch["masks"])
    values = {key: float(value) for key, value in metrics.compute().items()}
    return DiscoveryScores(**values, frames_per_second=frames_seen / seconds)


def score_grids(loader: DataLoader) -> dict[str, DiscoveryScores]:
    """The same metrics for every fixed grid split of the frames."""
    scores = {}
    for name, grid in FIXED_GRID_BASELINES.items():
        metrics = object_discovery_metrics(pixel_shares=True, entering_objects=True)
        for batch in loader:
            metrics.update(grid(batch["masks"]), batch["masks"])
        scores[name] = DiscoveryScores(**{k: float(v) for k, v in metrics.compute().items()})
    return scores


def print_scores(scores: dict[str, DiscoveryScores]) -> None:
    width = max(map(len, scores)) + 2
    print(f"\n{'segmenter':<{width}}{'ARI':>8}{'FG-ARI':>8}{'mBO':>8}{'mIoU':>8}{'frames/s':>10}"
          f"   objects' pixels: {'kept':>6}{'to bg':>7}{'split':>7}   objects merged"
          f"   bg claimed"
          f"   FG-ARI, bg / split / outline returned   entering objects: kept / to bg")
    for name, score in scores.items():
        speed = f"{score.frames_per_second:>10.1f}" if score.frames_per_second else f"{'':>10}"
        print(f"{name:<{width}}{score.ari:>8.3f}{score.fg_ari:>8.3f}{score.mbo:>8.3f}"
              f"{score.miou:>8.3f}{speed}{'':>20}{score.kept:>6.3f}{score.background:>7.3f}"
              f"{score.split:>7.3f}{score.merged:>17.3f}{score.background_claimed:>13.3f}"
              f"{score.fg_ari_background_returned:>17.3f} / {score.fg_ari_split_returned:.3f}"
              f" / {score.fg_ari_outline_returned:.3f}"
              f"{score.entering_kept:>20.3f} / {score.entering_background:.3f}")


def main(argv: list[str] | None = None) -> dict[str, DiscoveryScores]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoders", nargs="+", required=True, help="save_pretrained folders")
    parser.add_argument("--data", required=True, help="a CLEVRER-layout directory")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--videos", type=int, default=100, help="held-out videos (0: all)")
    parser.add_argument("--frames", type=int, default=32, help="first frames of each video")
    parser.add_argument("--mask-source", choices=("decoder", "slot_attention"), default="decoder")
    parser.add_argument("--untrained", action="store_true",
                        help="also score each config with fresh random weights")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default=None, help="write the table here as JSON")
    args = parser.parse_args(argv)

    encoders = {name: SmoothSAModel.from_pretrained(path)
                for name, path in zip(encoder_names(args.encoders), args.encoders, strict=True)}
    if args.untrained:
        for name, model in list(encoders.items()):
            torch.manual_seed(0)
            encoders[f"{name} (untrained)"] = SmoothSAModel(model.config)
    size = tuple(next(iter(encoders.values())).config.image_size)
    videos = load_clevrer_videos(args.data, args.split, VideoLoadingConfig(size=size),
                                 cache_dir=args.cache_dir)
    if args.videos:
        videos = videos.select(range(min(args.videos, len(videos))))
    loader = DataLoader(FirstFrames(videos, args.frames), batch_size=args.batch_size)
    scores = {name: score_encoder(model, loader, args.mask_source)
              for name, model in encoders.items()}
    scores.update(score_grids(loader))
    print(f"{len(videos)} {args.split} videos, first {args.frames} frames, masks from "
          f"{args.mask_source}")
    print_scores(scores)
    if args.out:
        temporary = Path(args.out + ".partial")
        temporary.write_text(json.dumps({k: vars(v) for k, v in scores.items()}, indent=2))
        os.replace(temporary, args.out)
    return scores


def encoder_names(paths: list[str]) -> list[str]:
    """A run's name for its exported `RUN/encoder`, a folder's own name otherwise; the paths
    themselves where those names repeat."""
    names = [Path(path).parent.name if Path(path).name == "encoder" else Path(path).name
             for path in paths]
    if len(set(names)) < len(names) or not all(names):
        return list(paths)
    return names


if __name__ == "__main__":
    main()
