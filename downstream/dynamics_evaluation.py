"""How well rollouts predict the future, horizon by horizon: slot error against the encoder's
slots of the true future frames and, through the frozen decoder, segmentation scores against
the true instance masks; for the world model beside the copy-last and constant-velocity
baselines (and any other predictor given, e.g. the least-squares one), as a table and a plot.

For horizon k (the k-th predicted frame): slot MSE is the mean squared difference to the
encoder's slots of that frame over slots and channels, averaged over videos; ARI, FG-ARI and
mIoU (Hungarian-matched, background left out) compare the argmax of the masks decoded from the
predicted slots (bilinearly resized to the true masks' size when they differ) with the true
index map of that frame; "kept" and "to background" say where the true objects' pixels went
(`ocl.metrics.pixel_shares`: the share kept by one slot, and the share taken by the background's
slot), "merged" how many objects share the slot that keeps them with another object, and
"background claimed" the background pixels that slots other than the background's take, per
object pixel (`ocl.metrics.background_claimed`: what ARI counts and FG-ARI cannot see, e.g. a
blurred predicted object drawn over the floor around it).
"still objects' / moving objects' best overlap" split the objects by their true motion over the
horizon (`OverlapByMotion`): an object is still when its mask's centroid stays within
`STILL_FRACTION` of the frame's width of where it is in the first predicted frame; each
object's best IoU with any predicted segment is averaged over the still and the moving objects
at each horizon (copying the last frame keeps still objects by construction).
"true slots" decodes the encoder's own slots of the future frames: a reference for what this
decoder makes of a perfect prediction (its slot MSE is 0).

Axes: b batch, t frames, k horizon, n slots, d slot channels, H W mask pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from einops import rearrange, repeat
from torch import nn
from torchmetrics import MeanMetric, Metric

from downstream.dynamics_baselines import constant_velocity, copy_last
from downstream.world_model import WorldModel
from ocl.metrics import (
    AdjustedRandIndex,
    BackgroundClaimed,
    MeanIntersectionOverUnion,
    ObjectPixelShares,
    attention_to_segmentation,
    contingency_table,
)
from ocl.modeling import SmoothSAModel

METRICS = {"slot_mse": "slot MSE (lower is better)", "ari": "ARI", "fg_ari": "FG-ARI",
           "miou": "mIoU", "kept": "objects' pixels kept by one slot",
           "to_background": "objects' pixels in the background slot (lower is better)",
           "merged": "objects whose slot keeps another object too (lower is better)",
           "background_claimed": "background claimed by object slots (lower is better)",
           "still_overlap": "still objects' best overlap",
           "moving_overlap": "moving objects' best overlap"}
SEGMENTATION_METRICS = ("ari", "fg_ari", "miou", "pixel_shares", "background_claimed")
STILL_FRACTION = 0.05
TRUE_SLOTS = "true slots"

Rollout = Callable[[torch.Tensor, int], torch.Tensor]  # burn-in [b,t,n,d], steps -> [b,k,n,d]


def object_motion(true_segmentation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How far each true object moves over a window of frames.

    Args:
        true_segmentation: `[b,K,H,W]` true instance ids, 0 the background, the same id for the
            same object in every frame.

    Returns:
        `[b,J]` the largest distance of the object's mask centroid from its centroid in the first
        frame it is in, as a fraction of the frame's width (NaN for an object in fewer than 2
        frames), and `[b,K,J]` bool, the object is in that frame; J = the largest id, id j in
        column j - 1.
    """
    height, width = true_segmentation.shape[-2:]
    num_objects = max(int(true_segmentation.max()), 1)
    ids = torch.arange(1, num_objects + 1, device=true_segmentation.device)
    masks = (true_segmentation[..., None] == ids).double()  # [b,K,H,W,J]
    area = masks.sum(dim=(2, 3))  # [b,K,J]
    rows = torch.arange(height, device=masks.device, dtype=torch.float64)
    columns = torch.arange(width, device=masks.device, dtype=torch.float64)
    safe_area = area.clamp_min(1)
    centroid = torch.stack([torch.einsum("bkhwj,h->bkj", masks, rows) / safe_area,
                            torch.einsum("bkhwj,w->bkj", masks, columns) / safe_area], dim=-1)
    present = area > 0
    first = present.double().argmax(dim=1)  # [b,J] the first frame with the object
    start = centroid.gather(1, repeat(first, "b j -> b 1 j c", c=2))
    distance = (centroid - start).norm(dim=-1).masked_fill(~present, 0).amax(dim=1)
    return torch.where(present.sum(dim=1) >= 2, distance / width, torch.nan), present


class OverlapByMotion(Metric):
    """Each true object's best IoU with any predicted segment at each horizon k = 1..K,
    averaged separately over still objects (their centroid within `still_fraction` of the
    frame's width of where it starts, `object_motion`) and moving ones; objects in fewer than
    2 of the K frames are left out, and an object counts at the horizons it is in."""

    full_state_update = False

    def __init__(self, horizon: int, still_fraction: float = STILL_FRACTION, **kwargs):
        super().__init__(**kwargs)
        self.horizon, self.still_fraction = horizon, still_fraction
        for name in ("still_sum", "still_count", "moving_sum", "moving_count"):
            self.add_state(name, torch.zeros(horizon, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, segmentation: torch.Tensor, true_segmentation: torch.Tensor) -> None:
        """`[b,K,H,W]` predicted segment ids and true instance ids (0 the background)."""
        motion, present = object_motion(true_segmentation)
        num_objects = present.shape[-1]
        counts = contingency_table(rearrange(segmentation, "b k h w -> (b k) h w"),
                                   rearrange(true_segmentation, "b k h w -> (b k) h w"),
                                   num_true=num_objects + 1)  # [(b k),i,1+J]
        union = counts.sum(dim=2, keepdim=True) + counts.sum(dim=1, keepdim=True) - counts
        best = (counts / union.clamp_min(1))[:, :, 1:].amax(dim=1)  # [(b k),J]
        best = rearrange(best, "(b k) j -> b k j", k=self.horizon)
        still = (motion <= self.still_fraction)[:, None] & present
        moving = (motion > self.still_fraction)[:, None] & present
        self.still_sum += (best * still).sum(dim=(0, 2))
        self.still_count += still.sum(dim=(0, 2))
        self.moving_sum += (best * moving).sum(dim=(0, 2))
        self.moving_count += moving.sum(dim=(0, 2))

    def compute(self) -> dict[str, torch.Tensor]:
        """{"still", "moving"}: `[K]` mean best IoU (NaN at a horizon with no such object)."""
        return {"still": self.still_sum / self.still_count,
                "moving": self.moving_sum / self.moving_count}


class HorizonMetrics(nn.Module):
    """Slot MSE, ARI, FG-ARI, mIoU, the objects' pixel shares kept and taken by the
    background's slot, the objects merged with another, the background claimed by object
    slots and the still and the moving objects' best overlap, of one predictor at each horizon
    k = 1..K, as torchmetrics (summed across processes)."""

    def __init__(self, horizon: int):
        super().__init__()
        self.horizon = horizon
        self.slot_mse = nn.ModuleList(MeanMetric() for _ in range(horizon))
        self.ari = nn.ModuleList(AdjustedRandIndex() for _ in range(horizon))
        self.fg_ari = nn.ModuleList(
            AdjustedRandIndex(ignore_background=True) for _ in range(horizon)
        )
        self.miou = nn.ModuleList(MeanIntersectionOverUnion() for _ in range(horizon))
        self.pixel_shares = nn.ModuleList(ObjectPixelShares() for _ in range(horizon))
        self.background_claimed = nn.ModuleList(BackgroundClaimed() for _ in range(horizon))
        self.overlap_by_motion = OverlapByMotion(horizon)

    def update(
        self,
        predicted: torch.Tensor,
        target: torch.Tensor,
        segmentation: torch.Tensor | None = None,
        true_segmentation: torch.Tensor | None = None,
    ) -> None:
        """predicted and target slots `[b,K,n,d]`; segmentations `[b,K,H,W]` (predicted slot
        ids, true instance ids with 0 the background), or None to score slots only."""
        if predicted.shape != target.shape or predicted.shape[1] != self.horizon:
            raise ValueError(f"predicted {tuple(predicted.shape)} and target "
                             f"{tuple(target.shape)} slots must be [b,{self.horizon},n,d]")
        error = (predicted.float() - target.float()).pow(2).mean(dim=(2, 3))  # [b,K]
        for k in range(self.horizon):
            self.slot_mse[k].update(error[:, k])
            if segmentation is not None:
                for name in SEGMENTATION_METRICS:
                    getattr(self, name)[k].update(segmentation[:, k], true_segmentation[:, k])
        if segmentation is not None:
            self.overlap_by_motion.update(segmentation, true_segmentation)

    def compute(self) -> dict[str, list[float]]:
        """{metric: [K] values}; segmentation metrics only once they were updated."""
        scores = {"slot_mse": [float(metric.compute()) for metric in self.slot_mse]}
        if self.ari[0].num_samples > 0:
            for name in ("ari", "fg_ari", "miou"):
                scores[name] = [float(metric.compute()) for metric in getattr(self, name)]
            shares = [metric.compute() for metric in self.pixel_shares]
            scores["kept"] = [float(share["kept"]) for share in shares]
            scores["to_background"] = [float(share["background"]) for share in shares]
            scores["merged"] = [float(share["merged"]) for share in shares]
            scores["background_claimed"] = [float(metric.compute())
                                            for metric in self.background_claimed]
            by_motion = self.overlap_by_motion.compute()
            scores["still_overlap"] = by_motion["still"].tolist()
            scores["moving_overlap"] = by_motion["moving"].tolist()
        return scores


def segment(encoder: SmoothSAModel, slots: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`[b,k,H,W]` slot id per pixel of the masks the decoder gives slots `[b,k,n,d]`."""
    masks, _ = encoder.decode_slots(slots)
    return attention_to_segmentation(masks, size)


@torch.no_grad()
def evaluate_rollouts(
    world_model: WorldModel,
    encoder: SmoothSAModel | None,
    windows: Iterable[dict[str, torch.Tensor]],
    burn_in: int,
    horizon: int,
    others: dict[str, Rollout] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Scores of the world model, the two baselines, `others` and (with the encoder) the true
    slots.

    Args:
        world_model, encoder: in eval mode, on one device; without the encoder only slot MSE.
        windows: batches with `slots` `[b,burn_in+horizon,n,d]` and, with the encoder, `masks`
            `[b,burn_in+horizon,H,W]` true instance ids.
        burn_in: observed frames given to each predictor; horizon: K, frames predicted.
        others: more predictors by name, scored after the baselines.

    Returns:
        {predictor: {metric: [K] values}}.
    """
    predictors: dict[str, Rollout] = {
        "world model": world_model.rollout,
        "copy last": copy_last,
        "constant velocity": constant_velocity,
        **(others or {}),
    }
    device = world_model.device
    names = list(predictors) + ([TRUE_SLOTS] if encoder is not None else [])
    metrics = {name: HorizonMetrics(horizon).to(device) for name in names}
    for batch in windows:
        slots = batch["slots"].to(device)
        if slots.shape[1] != burn_in + horizon:
            raise ValueError(f"windows of {slots.shape[1]} frames, expected burn_in + horizon "
                             f"= {burn_in + horizon}")
        observed, future = slots[:, :burn_in], slots[:, burn_in:]
        predictions = {name: rollout(observed, horizon) for name, rollout in predictors.items()}
        if encoder is None:
            for name, predicted in predictions.items():
                metrics[name].update(predicted, future)
            continue
        predictions[TRUE_SLOTS] = future
        true_segmentation = batch["masks"][:, burn_in:].to(device)
        size = tuple(true_segmentation.shape[-2:])
        for name, predicted in predictions.items():
            metrics[name].update(predicted, future, segment(encoder, predicted, size),
                                 true_segmentation)
    return {name: metric.compute() for name, metric in metrics.items()}


def horizon_table(results: dict[str, dict[str, list[float]]]) -> str:
    """One block per metric: a row per horizon k, a column per predictor."""
    names = list(results)
    widths = [max(len(name), 8) + 2 for name in names]
    lines = []
    for metric, title in METRICS.items():
        scored = [name for name in names if metric in results[name]]
        if not scored:
            continue
        lines += ["", title, "   k" + "".join(f"{name:>{width}}" for name, width
                                            in zip(names, widths, strict=True))]
        for k in range(len(results[names[0]]["slot_mse"])):
            cells = [f"{results[name][metric][k]:>{width}.4f}" if name in scored
                     else " " * width for name, width in zip(names, widths, strict=True)]
            lines.append(f"{k + 1:>4}" + "".join(cells))
    return "\n".join(lines)


def panel_title(metric: str) -> str:
    """A metric's name with which way is better (higher, unless its name says lower)."""
    name = METRICS[metric]
    return name if "better" in name else f"{name} (higher is better)"


def plot_horizon_curves(results: dict[str, dict[str, list[float]]], path: str | Path,
                        title: str) -> None:
    """A PNG with a panel per metric (two columns), each predictor a curve over horizons 1..K, one
    legend below; written to a temporary file and renamed."""
    try:
        from matplotlib.figure import Figure  # Agg canvas, no pyplot state
        from matplotlib.ticker import MaxNLocator
    except ImportError as error:
        raise ImportError("plots need matplotlib: pip install matplotlib") from error
    path = Path(path)
    metrics = [metric for metric in METRICS if metric in next(iter(results.values()))]
    columns = min(len(metrics), 2)
    rows = -(-len(metrics) // columns)
    figure = Figure(figsize=(5.2 * columns, 3.6 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for axis, metric in zip(axes, metrics, strict=False):
        for name, scores in results.items():
            steps = range(1, len(scores[metric]) + 1)
            if name == TRUE_SLOTS:
                style = dict(color="0.45", linestyle="--", label=f"{name}, decoded (reference)")
            else:
                style = dict(marker="o", markersize=3, label=name)
            axis.plot(steps, scores[metric], **style)
        axis.set_title(panel_title(metric))
        axis.set_xlabel("frames ahead (k)")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    for axis in axes[len(metrics):]:
        axis.set_visible(False)
    handles, labels = axes[len(metrics) - 1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    figure.suptitle(title)
    temporary = path.with_name(f".{path.name}.partial")
    figure.savefig(temporary, format="png", dpi=110)
    os.replace(temporary, path)
