"""Where each object's pixels went: why an FG-ARI is low.

FG-ARI falls when the background's segment takes part of an object, when an object is split
between several segments (for instance spare slots that copy it), and when one segment holds
several objects. These shares tell the three apart. The background's segment is the predicted
segment holding the most true-background points (true id 0) of the sample. For each object
(true id > 0), its points fall into three parts:

- `kept`: the largest share of them in one segment other than the background's;
- `background`: the share in the background's segment;
- `split`: the rest, spread over further segments;

which sum to 1 per object, and

- `merged`: 1 when the segment keeping the object's `kept` share keeps another object's too
  (two objects drawn as one), else 0 (also for an object with nothing kept).

Each sample averages its objects, and the metrics average samples. FG-ARI does not see the other
way round, segments drawn past their objects onto the background: `background_claimed` counts
the true-background points outside the background's segment per object point, so a FG-ARI won
by masks grown over the background shows there (and in ARI). In videos the same shares
can be taken over the entering objects alone, those absent from the first frame: the ones a
video model must give a slot to after its first frame, from one iteration on the transited slots.

Axes: b batch, i predicted segments, j true segments.
"""

import torch
from einops import rearrange

from ocl.metrics.per_sample_mean import PerSampleMean
from ocl.metrics.segmentation import contingency_table

PIXEL_SHARES = ("kept", "background", "split", "merged")


def object_pixel_shares(
    pred: torch.Tensor, target: torch.Tensor, entering_only: bool = False
) -> torch.Tensor:
    """Each sample's mean over its objects of the kept, background and split shares and of
    merged.

    Args:
        pred: `[b,h,w]` or `[b,t,h,w]` predicted segment ids (>= 0).
        target: the true segmentation, same shape: 0 background, > 0 objects, < 0 ignored.
        entering_only: average only the objects absent from the first frame (videos only).

    Returns:
        `[b,4]` float64 shares in the order of `PIXEL_SHARES`; NaN rows for samples without
        objects (without entering objects, with `entering_only`). Where a sample has no
        background points, no segment is the background's.
    """
    counts = contingency_table(pred, target)
    objects = counts[:, :, 1:]
    is_background, kept_points, keeper = background_and_keepers(counts)
    area = objects.sum(dim=1)
    present = area > 0
    if entering_only:
        present &= ~in_first_frame(target, num_objects=objects.shape[2])
    area = torch.where(present, area, 1.0)
    shares = objects / area[:, None, :]
    background = (shares * is_background[:, :, None]).sum(dim=1)
    kept = kept_points / area  # [b,j]
    split = 1.0 - kept - background
    keeps = (kept > 0) & present
    # objects kept by each segment, then whether an object's keeper keeps another one too
    kept_objects = shares.new_zeros(shares.shape[:2]).scatter_add_(1, keeper,
                                                                   keeps.to(shares.dtype))
    merged = keeps & (kept_objects.gather(1, keeper) > 1)
    per_object = torch.stack([kept, background, split, merged.to(shares.dtype)], dim=-1)
    num_objects = present.sum(dim=1, keepdim=True)
    total = (per_object * present[:, :, None]).sum(dim=1)
    return torch.where(num_objects > 0, total / num_objects.clamp(min=1), torch.nan)


def background_claimed(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`[b]` float64: each sample's true-background points in segments other than the
    background's, per object point (shapes as `object_pixel_shares`); NaN for a sample without
    objects or without background points."""
    counts = contingency_table(pred, target)
    is_background, _, _ = background_and_keepers(counts)
    claimed = counts[:, :, 0].masked_fill(is_background, 0.0).sum(dim=1)
    object_points = counts[:, :, 1:].sum(dim=(1, 2))
    valid = (object_points > 0) & is_background.any(dim=1)
    return torch.where(valid, claimed / object_points.clamp(min=1), torch.nan)


def in_first_frame(target: torch.Tensor, num_objects: int) -> torch.Tensor:
    """`[b,j]` True for each object id 1..num_objects seen in the first frame of `target`
    `[b,t,h,w]`."""
    if target.ndim != 4:
        raise ValueError(f"entering objects need videos [b,t,h,w], got {tuple(target.shape)}")
    first = rearrange(target[:, 0], "b h w -> b (h w)").clamp(min=0)
    seen = torch.zeros(len(target), num_objects + 1, dtype=torch.bool, device=target.device)
    return seen.scatter_(1, first.long(), True)[:, 1:]


def background_and_keepers(
    counts: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The background's segment and each object's keeper, from a contingency table `[b,i,j]`
    (column 0 the true background).

    Returns:
        `[b,i]` True at the segment holding the most true-background points (all False in a
        sample without them); `[b,j-1]` each object's points in its keeper, the segment other
        than the background's holding most of them; `[b,j-1]` the keeper's index (any segment
        where that count is 0).
    """
    background_points = counts[:, :, 0]
    has_background = background_points.sum(dim=1) > 0
    background_segment = torch.where(has_background, background_points.argmax(dim=1), -1)
    segments = torch.arange(counts.shape[1], device=counts.device)
    is_background = segments[None, :] == background_segment[:, None]
    kept, keeper = counts[:, :, 1:].masked_fill(is_background[:, :, None], 0.0).max(dim=1)
    return is_background, kept, keeper


class ObjectPixelShares(PerSampleMean):
    """Means over samples of `object_pixel_shares`, computed as `{part: value}` for the parts of
    `PIXEL_SHARES` (higher is better for `kept` only), as `{"entering_" + part: value}` with
    `entering_only`; a MetricCollection lists them as keys of their own."""

    higher_is_better = None
    score_shape = (len(PIXEL_SHARES),)

    def __init__(self, entering_only: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.entering_only = entering_only

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return object_pixel_shares(pred, target, self.entering_only)

    def compute(self) -> dict[str, torch.Tensor]:
        prefix = "entering_" if self.entering_only else ""
        return {prefix + part: value
                for part, value in zip(PIXEL_SHARES, super().compute(), strict=True)}


class BackgroundClaimed(PerSampleMean):
    """Mean over samples of `background_claimed` (lower is better)."""

    higher_is_better = False

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return background_claimed(pred, target)
