"""One-to-one matching of predicted segments (slots) to true objects by IoU.

The recognition probes reuse it: a slot learns an object's attributes only if the two are
matched here. Axes: b batch, i predicted segments, j true segments, m matched pairs.
"""

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def hungarian_pairs(iou: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one pairing with the largest total IoU (Hungarian algorithm).

    Args:
        iou: `[i,j]` IoU of each predicted segment with each true segment.

    Returns:
        predicted and true indices of the min(i, j) pairs, as int64 arrays.
    """
    if iou.ndim != 2:
        raise ValueError(f"iou must be [i,j], got shape {tuple(iou.shape)}")
    rows, cols = linear_sum_assignment(iou.detach().cpu().double().numpy(), maximize=True)
    return rows.astype(np.int64), cols.astype(np.int64)


@dataclass
class IoUMatches:
    """Matched (sample, predicted segment, true segment) triples, flat over the batch.

    Index a batch with them: `slots[matches.batch_index, matches.pred_index]` are the matched
    slots `[m,d]`, `labels[matches.batch_index, matches.true_index]` their objects' labels.

    Attributes:
        batch_index: `[m]` int64 sample of each pair.
        pred_index: `[m]` int64 predicted segment (slot) of each pair.
        true_index: `[m]` int64 true segment (object) of each pair.
        iou: `[m]` IoU of each pair, above the threshold.
    """

    batch_index: torch.Tensor
    pred_index: torch.Tensor
    true_index: torch.Tensor
    iou: torch.Tensor


def match_by_iou(iou: torch.Tensor, threshold: float) -> IoUMatches:
    """Hungarian matching on IoU, then only the pairs whose IoU is above `threshold` are kept.

    This is the official SmoothSA recognition-probe protocol: match slots to objects one-to-one
    maximising the total IoU, then drop the pairs with `iou <= threshold` (e.g. 0.1). With more
    slots than objects some slots stay unmatched; with fewer, some objects do. Pairs with zero
    overlap are always dropped, so empty masks and padded objects (all-zero columns) never match.

    Args:
        iou: `[i,j]` or `[b,i,j]` IoU of predicted with true segments (see `segment_iou`).
        threshold: pairs with IoU at or below it are dropped; in [0, 1).

    Returns:
        IoUMatches, sorted by sample then true index; batch_index is 0 for an `[i,j]` input.
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    if iou.ndim not in (2, 3):
        raise ValueError(f"iou must be [i,j] or [b,i,j], got shape {tuple(iou.shape)}")
    batched = iou if iou.ndim == 3 else iou[None]
    kept = []
    for sample, sample_iou in enumerate(batched):
        rows, cols = hungarian_pairs(sample_iou)
        order = np.argsort(cols)
        rows, cols = rows[order], cols[order]
        above = sample_iou[rows, cols].cpu().numpy() > threshold
        kept += [(sample, row, col) for row, col in zip(rows[above], cols[above], strict=True)]
    index = torch.tensor(kept, dtype=torch.int64, device=iou.device).reshape(-1, 3)
    batch_index, pred_index, true_index = index.unbind(dim=1)
    return IoUMatches(
        batch_index=batch_index,
        pred_index=pred_index,
        true_index=true_index,
        iou=batched[batch_index, pred_index, true_index],
    )
