"""Slot extraction versus running the full model forward per video, and how their memory grows
with video length.

Extraction is `downstream/slot_encoding.encode_videos`, what `downstream/extract.py` runs: eval
mode, inference mode, no decoder, frames kept uint8 until a chunk of `CHUNK` frames goes
through the encoder, videos batched; on a GPU under bf16 autocast. The full forward is a training
step's forward: train mode, autograd on, decoder on, the whole clip at once, one video at a time
(on a GPU under the same autocast). A third row times `extract_slots` end to end on mp4 files
(decoding, encoding and writing Parquet). Every case runs in a fresh process, so its peak
memory is its own: on CPU the peak resident memory above the loaded model and input, on a GPU
`torch.cuda.max_memory_allocated` above the same point. The encoder is the CLEVRER-sim sized
one (64x64 frames, a 32-channel CNN with one stride-2 layer, 7 slots of 64, a broadcast
decoder) with random weights, on random frames.

    python benchmarks/extract.py [--device cpu|cuda] [--videos 8] [--frames 32 128 512]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import current_rss_bytes, describe_machine, peak_rss_bytes  # noqa: E402
from downstream.slot_encoding import EncodingOptions, encode_videos, video_noise  # noqa: E402
from ocl.configuration import SmoothSAConfig  # noqa: E402
from ocl.modeling import SmoothSAModel  # noqa: E402

CHUNK = 32  # frames per encoder call in extraction
THROUGHPUT_FRAMES = 32  # a CLEVRER video (128 frames) at frame stride 4


def small_config() -> SmoothSAConfig:
    return SmoothSAConfig(
        backbone="cnn", image_size=(64, 64), cnn_channels=32, cnn_layers=4, cnn_downsample=2,
        num_slots=7, slot_dim=64, transit_window=5, decoder="broadcast", decoder_hidden_dim=32,
        broadcast_grid=8,
    )


class PeakMemory:
    """Peak memory of the code inside `with`, above what was in use when it began."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
            return self
        self.baseline, self.peak_before = current_rss_bytes(), peak_rss_bytes()
        # the process's peak so far may exceed what the code inside reaches: sample as well
        self.sampled, self.running = self.baseline, True
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.sampled = max(self.sampled, current_rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *error) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.baseline
            return
        self.running = False
        self.sampler.join()
        peak_after = peak_rss_bytes()
        top = peak_after if peak_after > self.peak_before else self.sampled
        self.peak = max(top, self.sampled) - self.baseline


def run_case(mode: str, frames: int, videos: int, device: torch.device) -> dict:
    """One measurement in this process: videos/s and peak memory."""
    torch.manual_seed(0)
    model = SmoothSAModel(small_config()).to(device)
    height, width = model.config.image_size
    video = torch.randint(0, 256, (videos, frames, 3, height, width), dtype=torch.uint8)
    noise = torch.stack([video_noise(0, index, model.config) for index in range(videos)])
    precision = "bf16" if device.type == "cuda" else "fp32"
    options = EncodingOptions(chunk_frames=CHUNK, precision=precision)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    if mode == "extraction":
        model.eval()
        encode_videos(model, video[:1, :2], noise[:1], options)  # warm-up
    else:
        model.train()
        with autocast:
            model(video[:1, :2].to(device).float() / 255).reconstruction.sum().item()
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        if mode == "extraction":
            encode_videos(model, video, noise, options).slots.sum().item()
        else:
            for index in range(videos):
                with autocast:
                    output = model(video[index:index + 1].to(device).float() / 255)
                output.reconstruction.float().sum().item()
                del output
        seconds = time.perf_counter() - start
    return {"mode": mode, "frames": frames, "videos": videos, "videos_per_s": videos / seconds,
            "peak_bytes": memory.peak}


def run_end_to_end(videos: int) -> dict:
    """`extract_slots` on `videos` mp4 files of THROUGHPUT_FRAMES frames at 64x64 (on the GPU
    when there is one, as `extract_slots` chooses)."""
    from downstream.extract import ExtractionConfig, extract_slots
    from tests.tasks.clevrer_directory import make_clevrer_directory

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        torch.manual_seed(0)
        SmoothSAModel(small_config()).save_pretrained(root / "encoder")
        make_clevrer_directory(root / "clevrer", {"train": tuple(range(videos))},
                               num_frames=THROUGHPUT_FRAMES, image_size=(64, 64))
        start = time.perf_counter()
        extract_slots(ExtractionConfig(encoder=str(root / "encoder"), data=str(root / "clevrer"),
                                       out=str(root / "slots"), chunk_frames=CHUNK,
                                       batch_videos=8))
        seconds = time.perf_counter() - start
    return {"mode": "end-to-end", "frames": THROUGHPUT_FRAMES, "videos": videos,
            "videos_per_s": videos / seconds, "peak_bytes": None}


def in_fresh_process(case: list[str], device: str, threads: int | None) -> dict:
    command = [sys.executable, __file__, "--device", device, "--case", *case]
    if threads:
        command += ["--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--videos", type=int, default=8, help="videos for the throughput rows")
    parser.add_argument("--frames", type=int, nargs="+", default=[32, 128, 512],
                        help="video lengths for the memory rows")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.case:
        mode, *numbers = args.case
        if mode == "end-to-end":
            print(json.dumps(run_end_to_end(int(numbers[0]))))
        else:
            print(json.dumps(run_case(mode, int(numbers[0]), int(numbers[1]), device)))
        return

    mib = 2**20
    precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    print(describe_machine())
    print(f"encoder: CLEVRER-sim size (64x64, CNN 32 ch stride 2, 7 slots of 64, broadcast "
          f"decoder), random weights; device {device}, {precision}; extraction streams "
          f"{CHUNK} frames a chunk\n")

    def measure(*case) -> dict:
        return in_fresh_process([str(part) for part in case], args.device, args.threads)

    fast = measure("extraction", THROUGHPUT_FRAMES, args.videos)
    slow = measure("forward", THROUGHPUT_FRAMES, args.videos)
    whole = measure("end-to-end", args.videos)
    print(f"throughput: {args.videos} videos of {THROUGHPUT_FRAMES} frames")
    print(f"{'':<44}{'videos/s':>10}{'peak MiB':>10}")
    print(f"{'extraction (batch of ' + str(args.videos) + ')':<44}"
          f"{fast['videos_per_s']:>10.2f}{fast['peak_bytes'] / mib:>10.1f}")
    print(f"{'full forward per video (train, decoder, grad)':<44}"
          f"{slow['videos_per_s']:>10.2f}{slow['peak_bytes'] / mib:>10.1f}")
    print(f"{'extract_slots end to end (mp4 -> Parquet)':<44}{whole['videos_per_s']:>10.2f}"
          f"{'':>10}")
    print(f"extraction is {fast['videos_per_s'] / slow['videos_per_s']:.1f}x faster; "
          f"end to end {whole['videos_per_s'] / slow['videos_per_s']:.1f}x\n")

    print("peak memory of one video by length (MiB above the loaded model and input)")
    print(f"{'frames':>7}{'extraction':>12}{'full forward':>14}{'forward / extraction':>22}"
          f"{'extraction f/s':>16}{'forward f/s':>13}")
    for frames in args.frames:
        fast, slow = measure("extraction", frames, 1), measure("forward", frames, 1)
        print(f"{frames:>7}{fast['peak_bytes'] / mib:>12.1f}{slow['peak_bytes'] / mib:>14.1f}"
              f"{slow['peak_bytes'] / max(fast['peak_bytes'], 1):>22.1f}"
              f"{fast['videos_per_s'] * frames:>16.0f}{slow['videos_per_s'] * frames:>13.0f}")


if __name__ == "__main__":
    main()
