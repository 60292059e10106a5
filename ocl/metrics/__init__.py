"""Object-discovery metrics (ARI, FG-ARI, mBO, mIoU) as torchmetrics Metrics, and their pieces.

Segmentations are integer index maps `[b,h,w]` or `[b,t,h,w]`; in a true one id 0 is the
background and negative ids are ignored pixels (see `ocl.metrics.segmentation`). Every per-sample
function returns `[b]` float64 with NaN for an invalid sample; every Metric averages valid samples.
"""

from ocl.metrics.ari import AdjustedRandIndex, adjusted_rand_index
from ocl.metrics.baselines import (
    FIXED_GRID_BASELINES,
    FixedGridSegmentation,
    fixed_grid_segmentation,
)
from ocl.metrics.discovery import object_discovery_metrics
from ocl.metrics.fg_ari_repairs import FG_ARI_REPAIRS, RepairedFgAri, repaired_fg_ari
from ocl.metrics.matching import IoUMatches, hungarian_pairs, match_by_iou
from ocl.metrics.overlap import (
    MeanBestOverlap,
    MeanIntersectionOverUnion,
    mean_best_overlap,
    mean_intersection_over_union,
    segment_iou,
)
from ocl.metrics.per_sample_mean import PerSampleMean
from ocl.metrics.pixel_shares import (
    PIXEL_SHARES,
    BackgroundClaimed,
    ObjectPixelShares,
    background_claimed,
    object_pixel_shares,
)
from ocl.metrics.segmentation import attention_to_segmentation, contingency_table

__all__ = [
    "FG_ARI_REPAIRS",
    "FIXED_GRID_BASELINES",
    "PIXEL_SHARES",
    "AdjustedRandIndex",
    "BackgroundClaimed",
    "FixedGridSegmentation",
    "IoUMatches",
    "MeanBestOverlap",
    "MeanIntersectionOverUnion",
    "ObjectPixelShares",
    "PerSampleMean",
    "RepairedFgAri",
    "adjusted_rand_index",
    "attention_to_segmentation",
    "background_claimed",
    "contingency_table",
    "fixed_grid_segmentation",
    "hungarian_pairs",
    "match_by_iou",
    "mean_best_overlap",
    "mean_intersection_over_union",
    "object_discovery_metrics",
    "object_pixel_shares",
    "repaired_fg_ari",
    "segment_iou",
]
