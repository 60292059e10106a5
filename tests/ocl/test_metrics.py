"""Object-discovery metrics: hand-made cases with known answers, scikit-learn's ARI, brute force."""

import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from ocl.metrics import (
    attention_to_segmentation,
    contingency_table,
)

# A 4x4 scene: background on the left half, object 1 top-right, object 2 bottom-right.
SCENE = torch.tensor(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [0, 0, 2, 2],
        [0, 0, 2, 2],
    ]
)
# One predicted segment over both objects (the right half), one over the background.
RIGHT_HALF = torch.tensor([[5, 5, 3, 3]] * 4)
# Each object split into a left and a right column: more predicted segments than objects.
SPLIT_OBJECTS = torch.tensor(
    [
        [0, 0, 1, 2],
        [0, 0, 1, 2],
        [0, 0, 3, 4],
        [0, 0, 3, 4],
    ]
)


def batch(*maps):
    return torch.stack(list(maps))


def sklearn_ari(pred, target):
    return adjusted_rand_score(target.flatten().numpy(), pred.flatten().numpy())


def random_segmentation(generator, shape, num_segments):
    return torch.randint(0, num_segments, shape, generator=generator)


def blocky_segmentation(generator, shape, num_segments):
    """Random segments made of 2x2 blocks, so IoUs are far from 0 and matching matters."""
    *leading, height, width = shape
    coarse = torch.randint(
        0, num_segments, (*leading, height // 2, width // 2), generator=generator
    )
    return coarse.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


# --- attention_to_segmentation ---------------------------------------------------------------


def test_attention_to_segmentation_upsamples_bilinearly_then_takes_argmax():
    # Slot 0 attends to the top-left token only; slot 1 is 0.6 everywhere. Bilinear upsampling
    # 2x2 -> 4x4 (align_corners False) weighs rows and columns by [1, .75, .25, 0], so slot 0 wins
    # where the product exceeds 0.6: (0,0)=1, (0,1)=(1,0)=.75, but not (1,1)=.5625.
    attention = torch.stack([torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.full((2, 2), 0.6)])
    segmentation = attention_to_segmentation(attention[None], (4, 4))
    expected = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]])
    assert segmentation.dtype == torch.int64
    assert torch.equal(segmentation, expected[None])


def test_attention_to_segmentation_of_video_equals_per_frame_and_ties_go_to_first_slot():
    generator = torch.Generator().manual_seed(0)
    attention = torch.rand(2, 3, 5, 4, 4, generator=generator)  # [b,t,n,h,w]
    video = attention_to_segmentation(attention, (8, 6))
    assert video.shape == (2, 3, 8, 6)
    for frame in range(3):
        assert torch.equal(video[:, frame], attention_to_segmentation(attention[:, frame], (8, 6)))
    assert (attention_to_segmentation(torch.ones(1, 3, 2, 2), (4, 4)) == 0).all()
    with pytest.raises(ValueError, match="attention must be"):
        attention_to_segmentation(torch.ones(3, 2, 2), (4, 4))


# --- contingency_table and input checks -------------------------------------------------------


def test_contingency_table_counts_pairs_and_skips_negative_target_ids():
    pred = torch.tensor([[0, 0, 1, 1, 2, 2]])
    target = torch.tensor([[0, 1, 1, 1, -1, 3]])
    counts = contingency_table(pred, target)
    assert counts.dtype == torch.float64
    expected = [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1]]  # column 2 absent, -1 not counted
    assert counts[0].tolist() == expected


@pytest.mark.parametrize(
    ("pred", "target", "message"),
    [
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), "integer index map"),
        (torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 5, dtype=torch.long), "shape"),
        (
            -torch.ones(1, 2, 2, dtype=torch.long),
            torch.zeros(1, 2, 2, dtype=torch.long),
            "negative",
        ),
    ],
)
def test_bad_segmentations_raise_errors_naming_the_problem(pred, target, message):
    with pytest.raises(ValueError, match=message):
        contingency_table(pred, target)
