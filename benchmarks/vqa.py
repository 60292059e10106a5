"""Training speed of the VQA reasoner, and its achieved FLOP/s as a share of the machine's.

The reasoner of a config (default: the main job's, `configs/vqa/default.yaml`) trains on
synthetic batches shaped like CLEVRER's (question lengths, the share of each question type and
their choices), with AdamW: training samples (questions) per second. Its FLOPs per sample are
counted with `torch.utils.flop_counter.FlopCounterMode` over one training step (forward and
backward), for the slot-token layouts side by side (a token per slot per frame, Aloe's; a token
per slot track, `model.slot_tokens=track`; tracks and a token per pair of slots,
`model.pair_tokens=true`); achieved FLOP/s = FLOPs per step / median
seconds per step. In the same run a large `torch.matmul` is timed (median too): the machine's
measured matmul FLOP/s, the ceiling the ratio is taken against. On CUDA both run in bf16. The
load average is printed: on a shared machine, other work slows both.

    python benchmarks/vqa.py [--config configs/vqa/default.yaml] [--device cpu|cuda]
"""

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import describe_machine  # noqa: E402
from downstream.reasoner import ReasonerModel  # noqa: E402
from downstream.vqa import DEFAULT_CONFIG, VqaConfig, sized_reasoner_config  # noqa: E402
from downstream.vqa_task import VqaLossConfig, VqaTask  # noqa: E402
from ocl.config_loading import load_config  # noqa: E402
from tasks.collate import QuestionBatch, QuestionCollator  # noqa: E402
from tasks.questions import DESCRIPTIVE_ANSWERS  # noqa: E402

VOCABULARY = 80  # CLEVRER's question vocabulary is about 80 words
LAYOUTS: dict[str, dict] = {"frame": {"slot_tokens": "frame"}, "track": {"slot_tokens": "track"},
                            "track+pairs": {"slot_tokens": "track", "pair_tokens": True}}
# (question type, share of the training questions, choices of each)
QUESTION_MIX = (("descriptive", 0.72, 0), ("explanatory", 0.11, 3), ("predictive", 0.05, 2),
                ("counterfactual", 0.12, 3))


def synthetic_batch(batch_size: int, num_frames: int, num_slots: int, slot_dim: int,
                    generator: torch.Generator) -> QuestionBatch:
    """`batch_size` questions in CLEVRER's type shares: ~15-word questions, ~8-word choices."""
    rows = []
    for kind, share, choices in QUESTION_MIX:
        for _ in range(round(share * batch_size)):
            def words(low, high):
                length = int(torch.randint(low, high, (1,), generator=generator))
                return torch.randint(3, VOCABULARY, (length,), generator=generator).tolist()

            rows.append({
                "video_index": len(rows), "question_id": 0, "question_type": kind,
                "question_tokens": words(10, 21),
                "answer_label": int(torch.randint(len(DESCRIPTIVE_ANSWERS), (1,),
                                                  generator=generator)) if not choices else -1,
                "choice_ids": list(range(choices)),
                "choice_tokens": [words(5, 12) for _ in range(choices)],
                "choice_labels": torch.randint(2, (choices,), generator=generator).tolist(),
                "slots": torch.randn(num_frames, num_slots, slot_dim,
                                     generator=generator).numpy(),
            })
    return QuestionCollator()(rows[:batch_size])


def matmul_flops_per_second(device: str, dtype: torch.dtype, size: int = 2048,
                            repeats: int = 10) -> float:
    """FLOP/s of `size` x `size` matrix products on `device`, median of `repeats`."""
    left = torch.randn(size, size, device=device, dtype=dtype)
    right = torch.randn(size, size, device=device, dtype=dtype)
    torch.matmul(left, right)  # warm-up
    return 2 * size**3 / median_seconds(lambda: torch.matmul(left, right), device, repeats)


def median_seconds(work, device: str, repeats: int) -> float:
    """Median wall time of `work()` over `repeats` calls (robust to a busy machine's spikes)."""
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        work()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="VQA config (its model, "
                        "num_frames and batch_size)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-slots", type=int, default=7, help="slots per frame")
    parser.add_argument("--slot-dim", type=int, default=64, help="channels of a slot")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    args = parser.parse_args()
    config = load_config(VqaConfig, args.config)
    settings, batch_size = config.model, config.training.batch_size
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32

    generator = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(batch_size, config.data.num_frames, args.num_slots,
                               args.slot_dim, generator).to(args.device) for _ in range(4)]
    speeds = {layout: measure_training(config, LAYOUTS[layout], batches, args, dtype)
              for layout in LAYOUTS}
    machine = matmul_flops_per_second(args.device, dtype)

    sequences = batches[0].question_tokens.shape[0] + batches[0].choice_tokens.shape[0]
    print(describe_machine() + f"; load average {os.getloadavg()[0]:.1f} over the last minute")
    print(f"reasoner of {args.config}: hidden {settings.hidden_size}, {settings.num_layers} "
          f"layers; {config.data.num_frames} frames x {args.num_slots} slots of {args.slot_dim}; "
          f"batch {batch_size} questions ({sequences} sequences with the choices); device "
          f"{args.device}, {str(dtype).removeprefix('torch.')}; slot tokens per frame (Aloe), "
          f"per slot track (model.slot_tokens) and with pair tokens (model.pair_tokens)\n")
    print(f"{'':<34}" + "".join(f"{layout:>12}" for layout in LAYOUTS))
    rows = (("parameters", lambda speed: f"{speed.parameters:,}"),
            ("training samples/s", lambda speed: f"{batch_size / speed.seconds_per_step:.1f}"),
            ("GFLOP per sample (fwd + bwd)",
             lambda speed: f"{speed.flops_per_step / batch_size / 1e9:.3f}"),
            ("achieved GFLOP/s", lambda speed: f"{speed.achieved / 1e9:.1f}"),
            ("achieved / machine matmul", lambda speed: f"{speed.achieved / machine:.1%}"))
    for name, cell in rows:
        print(f"{name:<34}" + "".join(f"{cell(speeds[layout]):>12}" for layout in LAYOUTS))
    print(f"{'machine matmul GFLOP/s (2048^2)':<34}{machine / 1e9:>12.1f}")


@dataclass
class TrainingSpeed:
    """One reasoner's training step: its parameters, FLOPs and median seconds."""

    parameters: int
    flops_per_step: float
    seconds_per_step: float

    @property
    def achieved(self) -> float:
        return self.flops_per_step / self.seconds_per_step


def measure_training(config: VqaConfig, tokens: dict, batches: list[QuestionBatch],
                     args: argparse.Namespace, dtype: torch.dtype) -> TrainingSpeed:
    """The config's reasoner with the model settings `tokens`, trained with AdamW on `batches`
    (the answers' losses; no masked-slot or grounding loss)."""
    torch.manual_seed(0)
    layout = replace(config, model=replace(config.model, **tokens), loss=VqaLossConfig())
    model = ReasonerModel(sized_reasoner_config(layout, VOCABULARY,
                                                (args.num_slots, args.slot_dim)))
    model = model.to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    task = VqaTask()

    def train_step(batch: QuestionBatch) -> None:
        with torch.autocast(args.device, dtype=dtype, enabled=args.device == "cuda"):
            loss = task.training_loss(model, batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    with FlopCounterMode(display=False) as counter:
        train_step(batches[0])
    for batch in batches[:3]:  # warm-up
        train_step(batch)
    steps = iter(range(args.steps))
    seconds = median_seconds(lambda: train_step(batches[next(steps) % len(batches)]),
                             args.device, args.steps)
    return TrainingSpeed(sum(parameter.numel() for parameter in model.parameters()),
                         counter.get_total_flops(), seconds)


if __name__ == "__main__":
    main()
