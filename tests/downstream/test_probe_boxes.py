"""Box formats, normalisation, the box of a mask and box IoU, checked on hand-made boxes."""

import itertools

import pytest
import torch

from downstream.boxes import (
    BOX_FORMATS,
    box_iou,
    boxes_from_masks,
    convert_boxes,
    denormalize_boxes,
    normalize_boxes,
)

XYXY = torch.tensor([[2.0, 4.0, 10.0, 8.0], [0.0, 0.0, 1.0, 1.0]])
IN_FORMAT = {
    "xyxy": XYXY,
    "xywh": torch.tensor([[2.0, 4.0, 8.0, 4.0], [0.0, 0.0, 1.0, 1.0]]),
    "cxcywh": torch.tensor([[6.0, 6.0, 8.0, 4.0], [0.5, 0.5, 1.0, 1.0]]),
}


@pytest.mark.parametrize("source,target", itertools.product(BOX_FORMATS, BOX_FORMATS))
def test_conversions_match_hand_made_boxes_and_round_trip(source, target):
    converted = convert_boxes(IN_FORMAT[source], source, target)
    assert torch.allclose(converted, IN_FORMAT[target])
    assert torch.allclose(convert_boxes(converted, target, source), IN_FORMAT[source])


def test_random_boxes_round_trip_through_every_format():
    boxes = torch.rand(3, 5, 4, generator=torch.Generator().manual_seed(0))
    for first, second in itertools.permutations(BOX_FORMATS, 2):
        back = convert_boxes(convert_boxes(boxes, first, second), second, first)
        assert torch.allclose(back, boxes, atol=1e-6)


def test_normalisation_divides_x_by_width_and_y_by_height():
    normalised = normalize_boxes(XYXY, size=(8, 10))  # height 8, width 10
    assert torch.allclose(normalised[0], torch.tensor([0.2, 0.5, 1.0, 1.0]))
    assert torch.allclose(denormalize_boxes(normalised, (8, 10)), XYXY)


def test_box_from_mask_uses_pixel_edges_and_empty_masks_get_zeros():
    masks = torch.zeros(3, 6, 7, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True  # rows 1-2, columns 2-4
    masks[1, 5, 6] = True  # one pixel in the corner
    boxes = boxes_from_masks(masks)
    assert boxes.tolist() == [[2, 1, 5, 3], [6, 5, 7, 6], [0, 0, 0, 0]]
    assert boxes_from_masks(masks[None]).shape == (1, 3, 4)


def test_box_iou_on_hand_made_pairs():
    boxes = torch.tensor([[0.0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 2, 2]])
    other = torch.tensor([[0.0, 0, 2, 2], [1, 0, 3, 2], [2, 2, 3, 3], [3, 3, 1, 1]])
    # same box; half-overlapping (2 / 6); disjoint; a degenerate predicted box has area 0
    assert torch.allclose(box_iou(boxes, other), torch.tensor([1.0, 1 / 3, 0.0, 0.0]))


def test_bad_boxes_are_refused_with_the_shape_or_format():
    with pytest.raises(ValueError, match="xyxy"):
        convert_boxes(XYXY, "ltrb", "xyxy")
    with pytest.raises(ValueError, match=r"\[\.\.\.,4\]"):
        box_iou(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="same shape"):
        box_iou(torch.zeros(2, 4), torch.zeros(3, 4))
