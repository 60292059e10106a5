"""Adjusted Rand index (ARI) and foreground ARI (FG-ARI) of a predicted segmentation.

Axes: b batch, i predicted segments, j true segments.
"""

import torch

from ocl.metrics.per_sample_mean import PerSampleMean
from ocl.metrics.segmentation import contingency_table


def adjusted_rand_index(
    pred: torch.Tensor, target: torch.Tensor, ignore_background: bool = False
) -> torch.Tensor:
    """ARI of each sample: pair-counting agreement of two clusterings, 0 by chance, 1 when equal.

    From the contingency table `N[i,j]` (points in predicted segment i and true segment j) with
    true-segment sizes `a_j`, predicted-segment sizes `b_i`, n points and `m = n(n-1)`:
    `ridx = Σ N(N-1)`, `aidx = Σ a(a-1)`, `bidx = Σ b(b-1)`, `expected = aidx·bidx / m`,
    `max = (aidx + bidx) / 2`, `ARI = (ridx - expected) / (max - expected)` (Hubert & Arabie
    1985, as computed by SAVi, VideoSAUR and the official SmoothSA code). `max - expected` is zero
    exactly when both clusterings are one cluster (`aidx = bidx = m`) or both all singletons
    (`aidx = bidx = 0`): there ARI = 1. Those cases are found by comparing the exact integer
    counts, not the rounded denominator.

    Args:
        pred: `[b,h,w]` or `[b,t,h,w]` predicted segment ids (>= 0).
        target: same shape, true segment ids; 0 background, negative ids ignored.
        ignore_background: FG-ARI: leave out the points whose true id is 0.

    Returns:
        `[b]` float64 ARI; NaN for a sample with no counted point (for FG-ARI: no foreground),
        which is invalid and left out of any mean.
    """
    if ignore_background:
        target = torch.where(target == 0, -1, target)
    return ari_of_contingency(contingency_table(pred, target))


def ari_of_contingency(counts: torch.Tensor) -> torch.Tensor:
    """ARI of each sample from its contingency table `[b,i,j]` (see `adjusted_rand_index`);
    NaN for a sample without points."""
    true_sizes = counts.sum(dim=1)  # [b,j]
    pred_sizes = counts.sum(dim=2)  # [b,i]
    num_points = true_sizes.sum(dim=1)  # [b]
    pairs = num_points * (num_points - 1)
    ridx = (counts * (counts - 1)).sum(dim=(1, 2))
    aidx = (true_sizes * (true_sizes - 1)).sum(dim=1)
    bidx = (pred_sizes * (pred_sizes - 1)).sum(dim=1)
    expected = aidx * bidx / pairs.clamp(min=1)
    maximum = (aidx + bidx) / 2
    degenerate = ((aidx == 0) & (bidx == 0)) | ((aidx == pairs) & (bidx == pairs))
    denominator = torch.where(degenerate, 1.0, maximum - expected)
    ari = torch.where(degenerate, 1.0, (ridx - expected) / denominator)
    return torch.where(num_points > 0, ari, torch.nan)


class AdjustedRandIndex(PerSampleMean):
    """Mean ARI over samples, or FG-ARI with `ignore_background=True`.

    `update(pred, target)` takes predicted and true segmentations `[b,h,w]` (images) or
    `[b,t,h,w]` (videos, scored as one spatio-temporal volume per sample), integer ids, true id 0
    the background and negative true ids ignored; see `adjusted_rand_index` for the definition.
    FG-ARI leaves out background points, so a sample without foreground is invalid and does not
    count. `compute()` returns the mean over valid samples (NaN before any). The per-sample sum
    and count are summed across processes.

    Args:
        ignore_background: score only the points whose true id is not 0 (FG-ARI).
        **kwargs: passed to `torchmetrics.Metric`.
    """

    def __init__(self, ignore_background: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.ignore_background = ignore_background

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return adjusted_rand_index(pred, target, ignore_background=self.ignore_background)
