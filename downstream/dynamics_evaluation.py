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
"true slots" decodes the encoder's own slots of the future frames: a reference for what this
decoder makes of a perfect prediction (its slot MSE is 0).

Axes: b batch, t frames, k horizon, n slots, d slot channels, H W mask pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn
from torchmetrics import MeanMetric

from downstream.dynamics_baselines import constant_velocity, copy_last
from downstream.world_model import WorldModel
from ocl.metrics import (
    AdjustedRandIndex,
    BackgroundClaimed,
    MeanIntersectionOverUnion,
    ObjectPixelShares,
    attention_to_segmentation,
)
from ocl.modeling import SmoothSAModel

METRICS = {"slot_mse": "slot MSE (lower is better)", "ari": "ARI", "fg_ari": "FG-ARI",
           "miou": "mIoU", "kept": "objects' pixels kept by one slot",
           "to_background": "objects' pixels in the background slot (lower is better)",
           "merged": "objects whose slot keeps another object too (lower is better)",
           "background_claimed": "background claimed by object slots (lower is better)"}
SEGMENTATION_METRICS = ("ari", "fg_ari", "miou", "pixel_shares", "background_claimed")
TRUE_SLOTS = "true slots"

Rollout = Callable[[torch.Tensor, int], torch.Tensor]  # burn-in [b,t,n,d], steps -> [b,k,n,d]


class HorizonMetrics(nn.Module):
    """Slot MSE, ARI, FG-ARI, mIoU, the objects' pixel shares kept and taken by the
    background's slot, the objects merged with another and the background claimed by object
    slots, of one predictor at each horizon k = 1..K, as torchmetrics (summed across
    processes)."""

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
