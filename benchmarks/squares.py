"""Plain Slot Attention on coloured squares, under each weight initialisation, side by side.

An easy object-discovery task that separates a working Slot Attention from a stuck one in
minutes on a CPU: 32x32 images of 3 axis-aligned squares (5-9 pixels, 8 colours) on black, 4
slots, this project's CNN (no downsampling), Slot Attention and spatial-broadcast decoder, pixel
MSE, Adam 4e-4 with 200 warm-up steps, batch 32. Prints FG-ARI of the decoder's masks on 128
held-out images every `--every` steps, for each `--init`.

    python benchmarks/squares.py [--steps 3000] [--init variance_preserving pytorch]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import describe_machine  # noqa: E402
from ocl.configuration import SmoothSAConfig  # noqa: E402
from ocl.losses import LossWeights, smoothsa_losses  # noqa: E402
from ocl.metrics import attention_to_segmentation  # noqa: E402
from ocl.metrics.discovery import object_discovery_metrics  # noqa: E402
from ocl.modeling import SmoothSAModel  # noqa: E402

SIZE = 32
SQUARES = 3
COLOURS = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0.5, 0],
     [0.5, 0.5, 1]], dtype=np.float32,
)


def squares(rng: np.random.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images `[count,3,S,S]` in [0,1] and their object ids `[count,S,S]` (0 background; a
    later square covers an earlier one)."""
    images = np.zeros((count, 3, SIZE, SIZE), np.float32)
    ids = np.zeros((count, SIZE, SIZE), np.int64)
    for index in range(count):
        for square in range(1, SQUARES + 1):
            side = int(rng.integers(5, 10))
            top, left = rng.integers(0, SIZE - side, 2)
            colour = COLOURS[rng.integers(len(COLOURS))]
            images[index, :, top:top + side, left:left + side] = colour[:, None, None]
            ids[index, top:top + side, left:left + side] = square
    return torch.from_numpy(images), torch.from_numpy(ids)


def fg_ari(model: SmoothSAModel, images: torch.Tensor, ids: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        output = model(images, generator=torch.Generator().manual_seed(0))
    model.train()
    metrics = object_discovery_metrics()
    metrics.update(attention_to_segmentation(output.decoder_attention, (SIZE, SIZE)), ids)
    return float(metrics.compute()["fg_ari"])


def train(init: str, steps: int, every: int) -> list[float]:
    torch.manual_seed(0)
    model = SmoothSAModel(SmoothSAConfig(
        backbone="cnn", image_size=(SIZE, SIZE), cnn_channels=32, cnn_downsample=1,
        num_slots=SQUARES + 1, slot_dim=64, use_preheater=False, decoder="broadcast",
        decoder_hidden_dim=32, broadcast_full_resolution_layers=0, weight_init=init,
    ))
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-4)
    weights = LossWeights(preheat=0, slot_contrast=0)
    rng = np.random.default_rng(0)
    held_out = squares(np.random.default_rng(1), 128)
    scores = []
    for step in range(1, steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = 4e-4 * min(1.0, step / 200)
        images, _ = squares(rng, 32)
        loss = smoothsa_losses(model(images), weights).total
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % every == 0:
            scores.append(fg_ari(model, *held_out))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--init", nargs="+", default=["variance_preserving", "pytorch"])
    args = parser.parse_args()
    print(describe_machine())
    rows = {}
    for init in args.init:
        start = time.perf_counter()
        rows[init] = train(init, args.steps, args.every)
        print(f"{init}: {time.perf_counter() - start:.0f} s", flush=True)
    print("\nFG-ARI at step   " + "".join(f"{init:>22}" for init in rows))
    for index in range(args.steps // args.every):
        step = (index + 1) * args.every
        print(f"{step:>14}   " + "".join(f"{scores[index]:>22.3f}" for scores in rows.values()))


if __name__ == "__main__":
    main()
