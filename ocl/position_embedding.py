"""Soft position embedding (Slot Attention): a linear map of the four distances to the edges."""

import torch
from torch import nn


class SoftPositionEmbedding(nn.Module):
    """Adds `Linear([y, x, 1-y, 1-x])` to a channels-last map `[b,h,w,c]`.

    Args:
        channels: c. grid: (h, w) of the maps it is applied to.
    """

    def __init__(self, channels: int, grid: tuple[int, int]):
        super().__init__()
        self.grid = tuple(grid)
        self.project = nn.Linear(4, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[b,h,w,c]` -> `[b,h,w,c]`."""
        if tuple(x.shape[1:3]) != self.grid:
            raise ValueError(f"expected a {self.grid} grid, got {tuple(x.shape[1:3])}")
        ys, xs = torch.meshgrid(
            torch.linspace(0, 1, self.grid[0], device=x.device),
            torch.linspace(0, 1, self.grid[1], device=x.device),
            indexing="ij",
        )
        edges = torch.stack([ys, xs, 1 - ys, 1 - xs], dim=-1).to(x.dtype)
        return x + self.project(edges)
