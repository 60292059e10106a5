"""Overlap metrics of a predicted segmentation: mean best overlap (mBO) and matched mean IoU (mIoU).

Axes: b batch, p points, i predicted segments, j true segments.
"""

import torch

from ocl.metrics.matching import hungarian_pairs
from ocl.metrics.per_sample_mean import PerSampleMean
from ocl.metrics.segmentation import contingency_table


def _iou(
    intersection: torch.Tensor, pred_area: torch.Tensor, true_area: torch.Tensor
) -> torch.Tensor:
    """`[b,i,j]` IoU from intersections `[b,i,j]` and areas `[b,i]`, `[b,j]`; 0 where both empty."""
    union = pred_area[:, :, None] + true_area[:, None, :] - intersection
    return intersection / torch.where(union > 0, union, 1.0)


def segment_iou(pred_masks: torch.Tensor, true_masks: torch.Tensor) -> torch.Tensor:
    """IoU of every predicted segment with every true segment, per sample.

    Args:
        pred_masks: `[b,p,i]` bool (or 0/1) one-hot predicted segments over p points.
        true_masks: `[b,p,j]` bool (or 0/1) true segments; they may overlap, and an all-zero
            column (an absent or padded object) has IoU 0 with everything.

    Returns:
        `[b,i,j]` float64 IoU; 0 for a pair of two empty masks.
    """
    if pred_masks.ndim != 3 or true_masks.shape[:2] != pred_masks.shape[:2]:
        raise ValueError(
            f"masks must be [b,p,i] and [b,p,j] with the same b and p, got "
            f"{tuple(pred_masks.shape)} and {tuple(true_masks.shape)}"
        )
    pred_masks, true_masks = pred_masks.double(), true_masks.double()
    intersection = torch.einsum("bpi,bpj->bij", pred_masks, true_masks)
    return _iou(intersection, pred_masks.sum(dim=1), true_masks.sum(dim=1))


def _iou_of_segmentations(
    pred: torch.Tensor, target: torch.Tensor, include_background: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`[b,i,j]` IoU of index maps and `[b,j]` which true segments are present."""
    counts = contingency_table(pred, target)
    iou = _iou(counts, counts.sum(dim=2), counts.sum(dim=1))
    present = counts.sum(dim=1) > 0
    if not include_background:
        iou, present = iou[:, :, 1:], present[:, 1:]
    return iou, present


def mean_best_overlap(
    pred: torch.Tensor, target: torch.Tensor, include_background: bool = False
) -> torch.Tensor:
    """mBO of each sample: each true segment's best IoU over all predicted segments, averaged.

    The mean runs over the true segments present in the sample; the background (true id 0) is
    left out unless `include_background`. Several true segments may pick the same prediction.

    Args:
        pred: `[b,h,w]` or `[b,t,h,w]` predicted segment ids (>= 0).
        target: same shape, true segment ids; 0 background, negative ids ignored.
        include_background: count the background as a true segment too.

    Returns:
        `[b]` float64; NaN for a sample with no true segment to score (invalid).
    """
    iou, present = _iou_of_segmentations(pred, target, include_background)
    best = iou.max(dim=1).values  # [b,j]
    return (best * present).sum(dim=1) / present.sum(dim=1)


def mean_intersection_over_union(
    pred: torch.Tensor, target: torch.Tensor, include_background: bool = False
) -> torch.Tensor:
    """mIoU of each sample: IoU of a one-to-one (Hungarian) matching, over the true segments.

    Predicted and true segments are matched one-to-one to maximise the total IoU
    (`scipy.optimize.linear_sum_assignment`); the matched IoUs are summed and divided by the
    number of true segments present, so a true segment left unmatched (fewer predictions than
    objects) counts 0. The background (true id 0) is left out unless `include_background`.

    Args:
        pred: `[b,h,w]` or `[b,t,h,w]` predicted segment ids (>= 0).
        target: same shape, true segment ids; 0 background, negative ids ignored.
        include_background: count the background as a true segment too.

    Returns:
        `[b]` float64; NaN for a sample with no true segment to score (invalid).
    """
    iou, present = _iou_of_segmentations(pred, target, include_background)
    scores = torch.full(present.shape[:1], torch.nan, dtype=torch.float64, device=iou.device)
    for sample, (sample_iou, sample_present) in enumerate(zip(iou, present, strict=True)):
        if sample_present.any():
            sample_iou = sample_iou[:, sample_present]
            rows, cols = hungarian_pairs(sample_iou)
            scores[sample] = sample_iou[rows, cols].sum() / sample_present.sum()
    return scores


class MeanBestOverlap(PerSampleMean):
    """Mean best overlap (mBO) over samples, as in VideoSAUR and the official SmoothSA code.

    `update(pred, target)` takes predicted and true segmentations `[b,h,w]` or `[b,t,h,w]`
    (a video is one spatio-temporal volume per sample), integer ids, true id 0 the background
    and negative true ids ignored. Per sample: the IoU matrix of predicted with true segments,
    each true segment's best IoU, the mean over present true segments (background excluded by
    default); a sample with none is invalid. `compute()` returns the mean over valid samples.

    Args:
        include_background: count the background as a true segment too.
        **kwargs: passed to `torchmetrics.Metric`.
    """

    def __init__(self, include_background: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.include_background = include_background

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mean_best_overlap(pred, target, include_background=self.include_background)


class MeanIntersectionOverUnion(PerSampleMean):
    """Hungarian-matched mean IoU (mIoU) over samples, as in VideoSAUR and official SmoothSA.

    Not torchmetrics' class-wise `MeanIoU`: segments are matched one-to-one per sample.
    `update(pred, target)` takes predicted and true segmentations `[b,h,w]` or `[b,t,h,w]`,
    integer ids, true id 0 the background and negative true ids ignored. Per sample: the IoU
    matrix, a one-to-one matching maximising total IoU, the matched IoUs summed over the number of
    present true segments (background excluded by default; unmatched ones count 0); a sample with
    none is invalid. `compute()` returns the mean over valid samples.

    Args:
        include_background: count the background as a true segment too.
        **kwargs: passed to `torchmetrics.Metric`.
    """

    def __init__(self, include_background: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.include_background = include_background

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mean_intersection_over_union(
            pred, target, include_background=self.include_background
        )
