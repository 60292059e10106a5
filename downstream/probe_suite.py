"""Every probe of one encoder: trained on one split's matched slots, scored on another's.

Metric names, the rows of the probe table:
    objects                      (frame, object) pairs with a visible object, held-out split
    matched                      how many of them were matched to a slot (IoU > threshold)
    train_matched                matched pairs the probes trained on
    official/top1, official/top3, official/box_iou
                                 the paper's object probe (its class: `class_attribute`)
    {attribute}/linear/accuracy, {attribute}/mlp/accuracy, {attribute}/majority/accuracy
                                 a category attribute; "majority" always answers the most
                                 frequent training category (the floor to beat)
    {attribute}/linear/r2, {attribute}/mlp/r2
                                 a continuous attribute (a constant scores 0)
A pair whose label is unknown (-1, NaN) is left out of that attribute's training and scoring.
See `downstream/probe_metrics.py` for the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn
from tqdm.auto import tqdm

from downstream.boxes import convert_boxes
from downstream.labelled_objects import AttributeSpec
from downstream.matched_slots import MatchedSlots
from downstream.probe_metrics import mean_box_iou, r_squared, top_k_accuracy
from downstream.probes import (
    PROBE_KINDS,
    AttributeProbe,
    ObjectProbe,
    ProbeTrainingConfig,
    Standardize,
    fit_probe,
    object_probe_loss,
)


def run_probes(
    train: MatchedSlots,
    evaluation: MatchedSlots,
    class_attribute: str,
    attributes: Sequence[str] | None,
    config: ProbeTrainingConfig,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """The metrics of the object probe and of a linear and an MLP probe per attribute.

    Args:
        class_attribute: the category attribute the object probe classifies.
        attributes: the attributes to probe (None: every attribute of the matched slots).
        progress: show a progress bar over the probes.
    """
    if train.attribute_specs != evaluation.attribute_specs:
        raise ValueError("training and held-out matched slots carry different attributes")
    train, evaluation = train.to(device), evaluation.to(device)
    metrics = {
        "objects": float(evaluation.num_objects),
        "matched": float(evaluation.num_matched),
        "train_matched": float(train.num_matched),
    }
    names = [spec.name for spec in train.attribute_specs] if attributes is None else attributes
    specs = [train.spec(name) for name in names]
    with tqdm(total=1 + len(specs) * len(PROBE_KINDS), desc="probes",
              disable=not progress) as bar:
        metrics.update(official_probe(train, evaluation, class_attribute, config))
        bar.update()
        for spec in specs:
            for kind in PROBE_KINDS:
                metrics.update(attribute_probe(train, evaluation, spec, kind, config))
                bar.update()
            if spec.kind == "category":
                metrics.update(majority_baseline(train, evaluation, spec))
    return metrics


def official_probe(train: MatchedSlots, evaluation: MatchedSlots, class_attribute: str,
                   config: ProbeTrainingConfig) -> dict[str, float]:
    """Top-1 and top-3 class accuracy and mean box IoU of the paper's object probe."""
    spec = train.spec(class_attribute)
    if spec.kind != "category":
        raise ValueError(f"class_attribute {class_attribute!r} must be a category attribute, "
                         f"it is {spec.kind}")
    names = ("official/top1", "official/top3", "official/box_iou")
    known, held_out = _known(train, spec), _known(evaluation, spec)
    if not known.any():
        return dict.fromkeys(names, math.nan)
    slots, classes = train.slots[known], train.attributes[spec.name][known]
    torch.manual_seed(config.seed)
    probe = ObjectProbe(Standardize.fit(slots), spec.size, config.dropout).to(slots.device)
    boxes = convert_boxes(train.boxes[known], "xyxy", config.box_format)
    loss = partial(object_probe_loss, box_loss_weight=config.box_loss_weight)
    fit_probe(probe, slots, (classes, boxes), loss, config)
    with torch.no_grad():
        output = probe(evaluation.slots[held_out])
    true_classes = evaluation.attributes[spec.name][held_out]
    true_boxes = convert_boxes(evaluation.boxes[held_out], "xyxy", config.box_format)
    return dict(zip(names, (
        top_k_accuracy(output.class_logits, true_classes, 1),
        top_k_accuracy(output.class_logits, true_classes, 3),
        mean_box_iou(output.boxes, true_boxes, config.box_format),
    ), strict=True))


def attribute_probe(train: MatchedSlots, evaluation: MatchedSlots, spec: AttributeSpec,
                    kind: str, config: ProbeTrainingConfig) -> dict[str, float]:
    """Accuracy (category) or R² (continuous) of a `kind` probe of one attribute."""
    category = spec.kind == "category"
    name = f"{spec.name}/{kind}/{'accuracy' if category else 'r2'}"
    known, held_out = _known(train, spec), _known(evaluation, spec)
    if not known.any():
        return {name: math.nan}
    slots, labels = train.slots[known], train.attributes[spec.name][known]
    true_labels = evaluation.attributes[spec.name][held_out]
    torch.manual_seed(config.seed)
    probe = AttributeProbe(Standardize.fit(slots), spec.size, kind, config.dropout)
    probe.to(slots.device)
    if category:
        fit_probe(probe, slots, (labels,), nn.functional.cross_entropy, config)
    else:  # regress standardised targets; R² is the same in standardised units
        scale = Standardize.fit(labels).to(labels.device)
        labels, true_labels = scale(labels), scale(true_labels)
        fit_probe(probe, slots, (labels,), nn.functional.mse_loss, config)
    with torch.no_grad():
        predicted = probe(evaluation.slots[held_out])
    if category:
        return {name: top_k_accuracy(predicted, true_labels, 1)}
    return {name: r_squared(predicted, true_labels)}


def majority_baseline(train: MatchedSlots, evaluation: MatchedSlots,
                      spec: AttributeSpec) -> dict[str, float]:
    """Held-out accuracy of always answering the most frequent training category."""
    name = f"{spec.name}/majority/accuracy"
    labels = train.attributes[spec.name][_known(train, spec)]
    true_labels = evaluation.attributes[spec.name][_known(evaluation, spec)]
    if len(labels) == 0 or len(true_labels) == 0:
        return {name: math.nan}
    majority = torch.bincount(labels, minlength=spec.size).argmax()
    return {name: (true_labels == majority).float().mean().item()}


def _known(matched: MatchedSlots, spec: AttributeSpec) -> torch.Tensor:
    """`[m]` bool: pairs whose `spec` label is known."""
    labels = matched.attributes[spec.name]
    if spec.kind == "category":
        return labels >= 0
    return torch.isfinite(labels).all(dim=1)
