"""What the recognition probes report, computed with torchmetrics on held-out matched slots.

    top-k accuracy   share of matched objects whose true class is among the k highest logits
                     (micro average: every object counts once; k is clipped to the number of
                     classes, so top-3 of a 3-way attribute is 1)
    mean box IoU     mean over matched objects of the IoU of the predicted box with the box of
                     the object's mask (no further matching: the slot-object pair is fixed)
    R²               coefficient of determination of a continuous attribute, per component,
                     averaged over components (1 perfect, 0 the mean's score, < 0 worse)
Every metric of an empty set is NaN. Axes: m matched objects, c classes, k components.
"""

import math

import torch
from torchmetrics.functional import r2_score
from torchmetrics.functional.classification import multiclass_accuracy

from downstream.boxes import box_iou, convert_boxes


def top_k_accuracy(logits: torch.Tensor, target: torch.Tensor, k: int) -> float:
    """Top-k accuracy of logits `[m,c]` for classes `[m]` (int64 in [0, c))."""
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"logits must be [m,c] and target [m], got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(target) == 0:
        return math.nan
    num_classes = logits.shape[1]
    accuracy = multiclass_accuracy(logits.float(), target, num_classes=num_classes,
                                   top_k=min(k, num_classes), average="micro")
    return accuracy.item()


def mean_box_iou(predicted: torch.Tensor, target: torch.Tensor, box_format: str = "xyxy") -> float:
    """Mean IoU of paired boxes `[m,4]` given in `box_format` (see `downstream/boxes.py`)."""
    if len(target) == 0:
        return math.nan
    iou = box_iou(convert_boxes(predicted.float(), box_format, "xyxy"),
                  convert_boxes(target.float(), box_format, "xyxy"))
    return iou.mean().item()


def r_squared(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """R² of predictions `[m,k]` for targets `[m,k]`, averaged over the k components."""
    if predicted.shape != target.shape or predicted.ndim != 2:
        raise ValueError(f"predicted and target must both be [m,k], got "
                         f"{tuple(predicted.shape)} and {tuple(target.shape)}")
    if len(target) < 2:
        return math.nan
    return r2_score(predicted.float(), target.float(), multioutput="uniform_average").item()
