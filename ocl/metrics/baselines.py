"""Fixed grid splits of a frame, scored as if they were a model's segmentation.

They say what a metric gives for knowing nothing about the scene: encoder-training evaluation
prints them next to the model's figures (a 3×3 grid reaches FG-ARI ≈ 0.6 on small scenes of a few
objects, so an FG-ARI must beat that to mean anything).
"""

from dataclasses import dataclass

import torch


def fixed_grid_segmentation(
    height: int, width: int, rows: int, cols: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """`[height,width]` int64 segment ids of a rows×cols grid, numbered row-major from 0.

    Pixel (y, x) is in cell `(y·rows // height, x·cols // width)`, so cells differ by at most one
    pixel in size when the frame does not divide evenly.
    """
    if not (1 <= rows <= height and 1 <= cols <= width):
        raise ValueError(
            f"a {rows}x{cols} grid needs 1 <= rows <= height and 1 <= cols <= width, "
            f"got frame {height}x{width}"
        )
    row = torch.arange(height, device=device) * rows // height
    col = torch.arange(width, device=device) * cols // width
    return row[:, None] * cols + col[None, :]


@dataclass(frozen=True)
class FixedGridSegmentation:
    """A baseline segmentation that splits every frame into `rows × cols` equal cells.

    Calling it on a true segmentation `[b,h,w]` or `[b,t,h,w]` returns the grid's segmentation
    with the same shape and device (int64, ids `0 .. rows·cols-1` row-major, the same cells in
    every frame), ready for `metric.update(grid(target), target)`.

    Attributes:
        rows: cells along the height (rows > 1, cols = 1: horizontal stripes).
        cols: cells along the width (rows = 1, cols > 1: vertical stripes).
    """

    rows: int
    cols: int

    def __post_init__(self):
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"rows and cols must be >= 1, got {self.rows} and {self.cols}")

    def __call__(self, target: torch.Tensor) -> torch.Tensor:
        if target.ndim < 3:
            raise ValueError(
                f"target must be [b,h,w] or [b,t,h,w], got shape {tuple(target.shape)}"
            )
        height, width = target.shape[-2:]
        grid = fixed_grid_segmentation(height, width, self.rows, self.cols, target.device)
        return grid.expand(target.shape).clone()


FIXED_GRID_BASELINES: dict[str, FixedGridSegmentation] = {
    "grid_2x2": FixedGridSegmentation(rows=2, cols=2),
    "grid_3x3": FixedGridSegmentation(rows=3, cols=3),
    "horizontal_stripes": FixedGridSegmentation(rows=4, cols=1),
    "vertical_stripes": FixedGridSegmentation(rows=1, cols=4),
}
"""The baselines the encoder-training evaluation prints, by name (stripes: 4 of them)."""
