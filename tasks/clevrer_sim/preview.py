"""A picture of one frame beside its instance masks, read back from a dataset's files.

`python -m tasks.clevrer_sim.preview DIR INDEX [--frame F] [--out frame.png] [--scale 4]`
draws the decoded mp4 frame, the same frame with each proposal mask tinted and outlined, and
prints the objects shown (attributes and pixel counts).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tasks.clevrer_sim.layout import Layout, split_of
from tasks.clevrer_sim.writer import decode_mask, read_video

PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230]],
    dtype=np.float64,
)  # fmt: skip


def frame_with_masks(
    root: Path, index: int, frame: int, scale: int = 4
) -> tuple[Image.Image, list[str]]:
    """(frame | frame with mask overlay) as one image, enlarged `scale` times, and a line per
    object shown."""
    layout = Layout(root)
    manifest = json.loads(layout.manifest().read_text())
    ranges = {split: range(*span) for split, span in manifest["splits"].items()}
    video = read_video(layout.video(split_of(index, ranges), index))[frame]
    proposal = json.loads(layout.proposal(index).read_text())["frames"][frame]
    overlay = video.astype(np.float64)
    lines = []
    for number, obj in enumerate(proposal["objects"]):
        mask = decode_mask(obj["mask"]).astype(bool)
        colour = PALETTE[number % len(PALETTE)]
        overlay[mask] = 0.35 * overlay[mask] + 0.65 * colour
        edge = mask & ~_eroded(mask)
        overlay[edge] = colour
        lines.append(
            f"{obj['color']} {obj['material']} {obj['shape']}: {int(mask.sum())} px "
            f"({100 * mask.mean():.1f}%), overlay colour {tuple(int(c) for c in colour)}"
        )
    picture = np.concatenate([video, overlay.round().astype(np.uint8)], axis=1)
    image = Image.fromarray(picture)
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image, lines


def _eroded(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    return (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("index", type=int)
    parser.add_argument("--frame", type=int, default=0)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("frame.png"))
    arguments = parser.parse_args()
    image, lines = frame_with_masks(
        arguments.root, arguments.index, arguments.frame, arguments.scale
    )
    image.save(arguments.out)
    print("\n".join(lines))
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
