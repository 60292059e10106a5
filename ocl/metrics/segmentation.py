"""Segmentations: how a model's attention becomes one, and how two of them are counted together.

A segmentation is an integer index map `[b,h,w]` (images) or `[b,t,h,w]` (videos): each pixel
holds the id of its segment. In a true segmentation id 0 is the background, ids k > 0 are
objects, ids need not be contiguous (absent ids are fine), and a NEGATIVE id marks a pixel that no
metric counts (padding, unlabelled). Every metric treats a sample as one set of points: a video's
frames are flattened together, so an object is one spatio-temporal segment.

Axes: b batch, t frames, n slots, h w pixels, p points (all pixels of a sample), i predicted
segments, j true segments.
"""

import torch
import torch.nn.functional as F
from einops import rearrange


@torch.no_grad()
def attention_to_segmentation(attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The objects a model discovered: upsampled attention, each pixel to its argmax slot.

    This is the official SmoothSA protocol (as in SAVi and VideoSAUR): `F.interpolate` with
    `mode="bilinear"` (align_corners False) to the target size, then argmax over the slot axis;
    ties go to the lowest slot index.

    Args:
        attention: `[b,n,h,w]` or `[b,t,n,h,w]` attention of n slots over an h×w token grid.
        size: output size (H, W), usually that of the true masks.

    Returns:
        `[b,H,W]` or `[b,t,H,W]` int64 slot index per pixel.
    """
    if attention.ndim not in (4, 5):
        raise ValueError(
            f"attention must be [b,n,h,w] or [b,t,n,h,w], got shape {tuple(attention.shape)}"
        )
    leading = attention.shape[:-3]
    frames = rearrange(attention, "... n h w -> (...) n h w")
    upsampled = F.interpolate(frames, size=tuple(size), mode="bilinear")
    return upsampled.argmax(dim=1).reshape(*leading, *size)


def check_segmentations(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Raises a ValueError naming the problem unless pred and target are comparable index maps."""
    for name, tensor in (("pred", pred), ("target", target)):
        if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            raise ValueError(f"{name} must be an integer index map, got dtype {tensor.dtype}")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    if pred.ndim < 2 or pred[0].numel() == 0:
        raise ValueError(
            f"segmentations must be [b,h,w] or [b,t,h,w] with pixels, got {tuple(pred.shape)}"
        )
    if (pred < 0).any():
        raise ValueError("pred has negative segment ids; only target may mark ignored pixels")


def contingency_table(
    pred: torch.Tensor, target: torch.Tensor, num_true: int | None = None
) -> torch.Tensor:
    """Counts of points per (predicted segment, true segment) pair, per sample.

    Args:
        pred: `[b,...]` integer predicted segment ids, all >= 0.
        target: `[b,...]` integer true segment ids, same shape; negative ids are not counted.
        num_true: at least this many columns (true ids 0..num_true-1).

    Returns:
        `[b,i,j]` float64 counts, `i = pred.max() + 1`, `j = max(target.max() + 1, num_true)`
        over the batch (column j is true id j, so absent ids are zero columns). float64 holds
        counts exactly far beyond a video's pixels, and their squares too.
    """
    check_segmentations(pred, target)
    pred = rearrange(pred, "b ... -> b (...)").long()
    target = rearrange(target, "b ... -> b (...)").long()
    batch_size = pred.shape[0]
    num_pred = int(pred.max()) + 1
    num_true = max(int(target.max()) + 1, num_true or 1)
    sample = torch.arange(batch_size, device=pred.device)[:, None].expand_as(pred)
    cell = (sample * num_pred + pred) * num_true + target
    counts = torch.bincount(cell[target >= 0], minlength=batch_size * num_pred * num_true)
    return rearrange(counts.double(), "(b i j) -> b i j", b=batch_size, i=num_pred)
