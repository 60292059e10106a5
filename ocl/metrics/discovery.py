"""The object-discovery metrics an encoder evaluation reports, as one collection."""

from torchmetrics import MetricCollection

from ocl.metrics.ari import AdjustedRandIndex
from ocl.metrics.fg_ari_repairs import RepairedFgAri
from ocl.metrics.overlap import MeanBestOverlap, MeanIntersectionOverUnion
from ocl.metrics.pixel_shares import BackgroundClaimed, ObjectPixelShares


def object_discovery_metrics(
    prefix: str = "", pixel_shares: bool = False, entering_objects: bool = False
) -> MetricCollection:
    """ARI, FG-ARI, mBO and mIoU (background left out) as keys `ari`, `fg_ari`, `mbo`, `miou`;
    with `pixel_shares`, also where the objects' pixels went as `kept`, `background`, `split`,
    `merged`, the background points the objects' segments took as `background_claimed`
    (`ocl.metrics.pixel_shares`) and what the objects' losses cost FG-ARI as
    `fg_ari_background_returned`, `fg_ari_split_returned`, `fg_ari_outline_returned`
    (`ocl.metrics.fg_ari_repairs`); with `entering_objects` (videos only), the same shares over
    the objects absent from the first frame as `entering_kept`, `entering_background`,
    `entering_split`, `entering_merged`.

    `update(pred, target)` with segmentations `[b,h,w]` or `[b,t,h,w]` feeds them all. Compute
    groups are off: ARI and FG-ARI have states of the same names that can be equal after a first
    batch, and torchmetrics would then merge them for good.

    Args:
        prefix: put before every key, e.g. `"val/"`.
    """
    metrics = {
        "ari": AdjustedRandIndex(),
        "fg_ari": AdjustedRandIndex(ignore_background=True),
        "mbo": MeanBestOverlap(),
        "miou": MeanIntersectionOverUnion(),
    }
    if pixel_shares:
        metrics["pixel_shares"] = ObjectPixelShares()
        metrics["background_claimed"] = BackgroundClaimed()
        metrics["fg_ari_repairs"] = RepairedFgAri()
    if entering_objects:
        metrics["entering_objects"] = ObjectPixelShares(entering_only=True)
    return MetricCollection(
        metrics,
        prefix=prefix,
        compute_groups=False,
    )
