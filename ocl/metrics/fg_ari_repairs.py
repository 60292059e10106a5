"""What each way of losing an object's pixels costs FG-ARI.

`ocl.metrics.pixel_shares` says where the objects' pixels went: kept by one segment, taken by the
background's segment, or split over others. These scores say what each of those costs, as
FG-ARI recomputed after a repair:

- `fg_ari_background_returned`: each object's points in the background's segment are handed to
  the segment that keeps the object;
- `fg_ari_split_returned`: each object's points in further segments are handed to its keeper;
- `fg_ari_outline_returned`: only the points of the background's share that lie on the object's
  outline (a point with a 4-neighbour of another true id in its frame) are handed back, what
  masks one point too thin all round cost.

An object that no segment but the background's keeps is handed to a new segment of its own.
The background's segment and an object's keeper are those of `ocl.metrics.pixel_shares`. A
repaired score far above FG-ARI names the failure that holds FG-ARI down; both repairs at once
leave only merged objects.

Axes: b batch, i predicted segments, j true objects.
"""

import torch
import torch.nn.functional as F
from einops import rearrange

from ocl.metrics.ari import ari_of_contingency
from ocl.metrics.per_sample_mean import PerSampleMean
from ocl.metrics.pixel_shares import background_and_keepers
from ocl.metrics.segmentation import contingency_table

FG_ARI_REPAIRS = ("fg_ari_background_returned", "fg_ari_split_returned", "fg_ari_outline_returned")


def repaired_fg_ari(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each sample's FG-ARI after each repair of `FG_ARI_REPAIRS`.

    Args:
        pred: `[b,h,w]` or `[b,t,h,w]` predicted segment ids (>= 0).
        target: the true segmentation, same shape: 0 background, > 0 objects, < 0 ignored.

    Returns:
        `[b,3]` float64 in the order of `FG_ARI_REPAIRS`; NaN rows for samples without objects.
    """
    counts = contingency_table(pred, target)
    objects = counts[:, :, 1:]
    num_segments, num_objects = objects.shape[1:]
    is_background, kept, keeper = background_and_keepers(counts)
    taken = objects * is_background[:, :, None]
    split = (objects - taken).scatter(1, keeper[:, None, :], 0.0)
    outline_only = torch.where(on_outline(target), target, -1)
    on_outline_counts = contingency_table(pred, outline_only, num_true=counts.shape[2])
    taken_on_outline = on_outline_counts[:, :, 1:] * is_background[:, :, None]
    # an object only the background's segment holds goes to a new segment of its own
    own_segment = num_segments + torch.arange(num_objects, device=counts.device)
    keeper = torch.where(kept > 0, keeper, own_segment)[:, None, :]  # [b,1,j]
    with_new_segments = (0, 0, 0, num_objects)  # [b,i+j,j]
    repaired = []
    for moved in (taken, split, taken_on_outline):
        table = F.pad(objects - moved, with_new_segments)
        table = table.scatter_add(1, keeper, moved.sum(dim=1, keepdim=True))
        repaired.append(ari_of_contingency(table))
    return torch.stack(repaired, dim=-1)


def on_outline(target: torch.Tensor) -> torch.Tensor:
    """True where a point of `target` `[b,h,w]` or `[b,t,h,w]` has a 4-neighbour of another
    id in its frame (the frame's border is no outline)."""
    frames = rearrange(target, "... h w -> (...) 1 h w").float()
    padded = F.pad(frames, (1, 1, 1, 1), mode="replicate")[:, 0]
    centre = padded[:, 1:-1, 1:-1]
    outline = ((padded[:, :-2, 1:-1] != centre) | (padded[:, 2:, 1:-1] != centre)
               | (padded[:, 1:-1, :-2] != centre) | (padded[:, 1:-1, 2:] != centre))
    return outline.reshape(target.shape)


class RepairedFgAri(PerSampleMean):
    """Means over samples of `repaired_fg_ari`, computed as `{name: value}` for the names of
    `FG_ARI_REPAIRS`; a MetricCollection lists them as keys of their own."""

    score_shape = (len(FG_ARI_REPAIRS),)

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return repaired_fg_ari(pred, target)

    def compute(self) -> dict[str, torch.Tensor]:
        return dict(zip(FG_ARI_REPAIRS, super().compute(), strict=True))
