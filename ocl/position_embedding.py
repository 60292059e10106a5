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
        ys, xs = torch.meshgrid(
            torch.linspace(0, 1, grid[0]), torch.linspace(0, 1, grid[1]), indexing="ij"
        )
        self.register_buffer("edges", torch.stack([ys, xs, 1 - ys, 1 - xs], dim=-1), persistent=False)
        self.project = nn.Linear(4, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[b,h,w,c]` -> `[b,h,w,c]`."""
        if x.shape[1:3] != self.edges.shape[:2]:
            raise ValueError(f"expected a {tuple(self.edges.shape[:2])} grid, got {tuple(x.shape[1:3])}")
        return x + self.project(self.edges)
