"""Axis-aligned boxes: format conversions, normalisation, the box of a mask, and box IoU.

Formats of the last axis (4 numbers):
    "xyxy"   [x1, y1, x2, y2]  left, top, right, bottom
    "xywh"   [x1, y1, w, h]    left, top, width, height (COCO's `bbox`)
    "cxcywh" [cx, cy, w, h]    centre, width, height
x runs along the width, y along the height. A box of a mask uses pixel EDGES: the mask's one
pixel (row r, column c) is the box [c, r, c+1, r+1], so its area is its pixel count's bound.
Normalised boxes divide x by the image width and y by its height: [0, 1] inside the image.
"""

import torch

BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")


def convert_boxes(boxes: torch.Tensor, source: str, target: str) -> torch.Tensor:
    """Boxes `[...,4]` from format `source` to format `target` (see the module docstring)."""
    for name, value in (("source", source), ("target", target)):
        if value not in BOX_FORMATS:
            raise ValueError(f"{name} box format must be one of {BOX_FORMATS}, got {value!r}")
    check_boxes(boxes)
    if source == target:
        return boxes
    xyxy = _to_xyxy(boxes, source)
    x1, y1, x2, y2 = xyxy.unbind(dim=-1)
    if target == "xyxy":
        return xyxy
    if target == "xywh":
        return torch.stack([x1, y1, x2 - x1, y2 - y1], dim=-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def _to_xyxy(boxes: torch.Tensor, source: str) -> torch.Tensor:
    a, b, c, d = boxes.unbind(dim=-1)
    if source == "xyxy":
        return boxes
    if source == "xywh":
        return torch.stack([a, b, a + c, b + d], dim=-1)
    return torch.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], dim=-1)


def normalize_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pixel boxes `[...,4]` (any format) divided by the image `size` = (height, width)."""
    check_boxes(boxes)
    height, width = size
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive (height, width), got {size}")
    return boxes / boxes.new_tensor([width, height, width, height])


def denormalize_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Normalised boxes `[...,4]` (any format) back to pixels of an image of (height, width)."""
    check_boxes(boxes)
    height, width = size
    return boxes * boxes.new_tensor([width, height, width, height])


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """The tightest xyxy box (pixel edges) around each mask.

    Args:
        masks: `[...,h,w]` bool (or 0/1).

    Returns:
        `[...,4]` float32 xyxy in pixels; an empty mask gets [0, 0, 0, 0].
    """
    if masks.ndim < 2:
        raise ValueError(f"masks must be [...,h,w], got shape {tuple(masks.shape)}")
    masks = masks.bool()
    height, width = masks.shape[-2:]
    rows, columns = masks.any(dim=-1), masks.any(dim=-2)  # [...,h], [...,w]
    present = rows.any(dim=-1)
    rows_index = torch.arange(height, device=masks.device)
    columns_index = torch.arange(width, device=masks.device)
    y1 = torch.where(rows, rows_index, height).amin(dim=-1)
    y2 = torch.where(rows, rows_index, -1).amax(dim=-1) + 1
    x1 = torch.where(columns, columns_index, width).amin(dim=-1)
    x2 = torch.where(columns, columns_index, -1).amax(dim=-1) + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=-1).float()
    return torch.where(present[..., None], boxes, 0.0)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """`[...]` area of xyxy boxes `[...,4]`; 0 for a box with x2 <= x1 or y2 <= y1."""
    check_boxes(boxes)
    x1, y1, x2, y2 = boxes.unbind(dim=-1)
    return (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)


def box_iou(boxes: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """IoU of paired xyxy boxes: `boxes[k]` with `other[k]`.

    Args:
        boxes, other: `[...,4]` xyxy, the same shape. A degenerate box (x2 <= x1 or y2 <= y1,
            e.g. a predicted one) has area 0.

    Returns:
        `[...]` IoU in [0, 1]; 0 where the union is empty.
    """
    check_boxes(boxes)
    if boxes.shape != other.shape:
        raise ValueError(
            f"paired boxes must have the same shape, got {tuple(boxes.shape)} and "
            f"{tuple(other.shape)}"
        )
    top_left = torch.maximum(boxes[..., :2], other[..., :2])
    bottom_right = torch.minimum(boxes[..., 2:], other[..., 2:])
    intersection = box_area(torch.cat([top_left, bottom_right], dim=-1))
    union = box_area(boxes) + box_area(other) - intersection
    return intersection / torch.where(union > 0, union, 1.0)


def check_boxes(boxes: torch.Tensor) -> None:
    """Raises a ValueError unless `boxes` is a floating tensor `[...,4]`."""
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [...,4], got shape {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise ValueError(f"boxes must be floating point, got {boxes.dtype}")
