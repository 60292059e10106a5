"""Slot extraction versus a training-style forward of the same SmoothSA video encoder.

Extraction: eval mode, `torch.inference_mode`, no decoder, frames streamed in chunks (the state
carries only the transit window). Training-style: train mode, autograd on, decoder on, the whole
clip at once. Each case runs in a fresh process so its peak memory is its own. The model is the
paper's (DINOv2 ViT-S/14 with registers at 256 -> 224, 7 slots of 256, a 4-layer decoder) with
random weights; `--quick` uses a tiny one.

    python benchmarks/encoder.py [--quick] [--frames 8 64] [--device cpu|cuda]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import Dinov2WithRegistersConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import current_rss_bytes, describe_machine, peak_rss_bytes  # noqa: E402
from ocl.configuration import SmoothSAConfig  # noqa: E402
from ocl.modeling import SmoothSAModel  # noqa: E402

CHUNK = 8


def paper_config(quick: bool) -> SmoothSAConfig:
    if quick:
        backbone = Dinov2WithRegistersConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=56,
            patch_size=14,
        )
        return SmoothSAConfig(backbone_config=backbone.to_dict(), image_size=(64, 64),
                              num_slots=4, slot_dim=64, transit_window=5, decoder_layers=2)
    backbone = Dinov2WithRegistersConfig(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=224,
        patch_size=14,
    )
    return SmoothSAConfig(backbone_config=backbone.to_dict(), image_size=(256, 256), num_slots=7,
                          slot_dim=256, transit_window=5, decoder_layers=4)


def run_case(mode: str, frames: int, quick: bool, device: str) -> dict:
    """One measurement, in this process: frames/s and peak memory above the loaded model."""
    torch.manual_seed(0)
    model = SmoothSAModel(paper_config(quick)).to(device)
    height, width = model.config.image_size
    video = torch.rand(1, frames, 3, height, width, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        baseline = current_rss_bytes()
    start = time.perf_counter()
    if mode == "extraction":
        model.eval()
        with torch.inference_mode():
            state = None
            for first in range(0, frames, CHUNK):
                _, state = model.encode_video(video[:, first:first + CHUNK], state, decode=False)
    else:
        model.train()
        output = model(video)
        output.reconstruction.sum().item()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - baseline
    else:
        peak = peak_rss_bytes() - baseline
    seconds = time.perf_counter() - start
    return {"mode": mode, "frames": frames, "frames_per_s": frames / seconds, "peak_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model, for a smoke run")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.quick, args.device)))
        return

    print(describe_machine())
    print(f"model: {'tiny' if args.quick else 'paper-size'} SmoothSA video encoder, "
          f"device {args.device}, extraction streamed {CHUNK} frames a chunk\n")
    results = {}
    for frames in args.frames:
        for mode in ("extraction", "training-style"):
            command = [sys.executable, __file__, "--case", mode, str(frames),
                       "--device", args.device] + (["--quick"] if args.quick else [])
            line = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[mode, frames] = json.loads(line.strip().splitlines()[-1])
    print(f"{'frames':>6} | {'extraction f/s':>14} {'peak MiB':>9} | "
          f"{'training-style f/s':>18} {'peak MiB':>9} | {'speed x':>7} {'memory /':>8}")
    for frames in args.frames:
        fast, slow = results["extraction", frames], results["training-style", frames]
        mib = 2**20
        print(f"{frames:>6} | {fast['frames_per_s']:>14.1f} {fast['peak_bytes'] / mib:>9.0f} | "
              f"{slow['frames_per_s']:>18.1f} {slow['peak_bytes'] / mib:>9.0f} | "
              f"{fast['frames_per_s'] / slow['frames_per_s']:>7.2f} "
              f"{slow['peak_bytes'] / max(fast['peak_bytes'], 1):>8.1f}")
    print("\nspeed x: extraction frames/s over training-style; memory /: training-style peak "
          "over extraction peak (memory above the loaded model).")


if __name__ == "__main__":
    main()
