"""The object-discovery metrics an encoder evaluation reports, as one collection."""

from torchmetrics import MetricCollection

from ocl.metrics.ari import AdjustedRandIndex
from ocl.metrics.overlap import MeanBestOverlap, MeanIntersectionOverUnion


def object_discovery_metrics(prefix: str = "") -> MetricCollection:
    """ARI, FG-ARI, mBO and mIoU (background left out) as keys `ari`, `fg_ari`, `mbo`, `miou`.

    `update(pred, target)` with segmentations `[b,h,w]` or `[b,t,h,w]` feeds all four. Compute
    groups are off: ARI and FG-ARI have states of the same names that can be equal after a first
    batch, and torchmetrics would then merge them for good.

    Args:
        prefix: put before every key, e.g. `"val/"`.
    """
    return MetricCollection(
        {
            "ari": AdjustedRandIndex(),
            "fg_ari": AdjustedRandIndex(ignore_background=True),
            "mbo": MeanBestOverlap(),
            "miou": MeanIntersectionOverUnion(),
        },
        prefix=prefix,
        compute_groups=False,
    )
