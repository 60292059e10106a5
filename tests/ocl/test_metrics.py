"""Object-discovery metrics: hand-made cases with known answers, scikit-learn's ARI, brute force."""

import itertools
import math

import pytest
import torch
from sklearn.metrics import adjusted_rand_score
from torchmetrics.utilities.data import dim_zero_sum

from ocl.metrics import (
    FIXED_GRID_BASELINES,
    AdjustedRandIndex,
    BackgroundClaimed,
    FixedGridSegmentation,
    MeanBestOverlap,
    MeanIntersectionOverUnion,
    ObjectPixelShares,
    RepairedFgAri,
    adjusted_rand_index,
    attention_to_segmentation,
    background_claimed,
    contingency_table,
    fixed_grid_segmentation,
    hungarian_pairs,
    match_by_iou,
    mean_best_overlap,
    mean_intersection_over_union,
    object_discovery_metrics,
    object_pixel_shares,
    repaired_fg_ari,
    segment_iou,
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


# --- ARI and FG-ARI ---------------------------------------------------------------------------


def test_ari_is_one_for_a_perfect_segmentation_under_any_relabelling():
    relabelled = torch.tensor([7, 2, 4])[SCENE]
    for pred in (SCENE, relabelled):
        assert adjusted_rand_index(batch(pred), batch(SCENE)).item() == 1.0
        assert adjusted_rand_index(batch(pred), batch(SCENE), ignore_background=True).item() == 1


def test_ari_known_values():
    # 4 points: C(4,2) = 6 pairs. Splitting one true pair -> 4/7; crossing the partition -> -1/2.
    target = torch.tensor([[0, 0, 1, 1]])
    assert adjusted_rand_index(torch.tensor([[0, 0, 1, 2]]), target).item() == pytest.approx(4 / 7)
    assert adjusted_rand_index(torch.tensor([[0, 1, 0, 1]]), target).item() == pytest.approx(-0.5)


def test_ari_of_one_segment_is_zero_against_many_and_one_against_one():
    one_segment = torch.zeros(1, 4, 4, dtype=torch.long)
    assert adjusted_rand_index(one_segment, batch(SCENE)).item() == 0.0
    assert adjusted_rand_index(one_segment, one_segment).item() == 1.0  # degenerate: both single
    singletons = torch.arange(16).reshape(1, 4, 4)
    assert adjusted_rand_index(singletons, singletons.flip(-1)).item() == 1.0  # both singletons
    # FG-ARI: one segment over a foreground of two objects scores 0, over one object scores 1.
    assert adjusted_rand_index(one_segment, batch(SCENE), ignore_background=True).item() == 0.0
    one_object = batch(torch.where(SCENE == 2, 1, SCENE))
    assert adjusted_rand_index(one_segment, one_object, ignore_background=True).item() == 1.0


def test_fg_ari_ignores_the_background_and_is_invalid_without_foreground():
    # Chop the background into pieces: ARI drops, FG-ARI does not see it.
    pred = batch(torch.where(SCENE == 0, torch.arange(16).reshape(4, 4) + 10, SCENE))
    assert adjusted_rand_index(pred, batch(SCENE)).item() < 1
    assert adjusted_rand_index(pred, batch(SCENE), ignore_background=True).item() == 1.0
    empty = torch.zeros(2, 4, 4, dtype=torch.long)
    empty[1] = SCENE
    fg_ari = adjusted_rand_index(batch(SCENE, SCENE), empty, ignore_background=True)
    assert math.isnan(fg_ari[0].item()) and fg_ari[1].item() == 1.0
    all_ignored = -torch.ones(1, 4, 4, dtype=torch.long)
    assert math.isnan(adjusted_rand_index(batch(SCENE), all_ignored).item())


def test_ari_skips_ignored_pixels():
    target = batch(torch.where(torch.arange(4)[None, :] == 0, -1, SCENE))  # first column ignored
    pred = batch(torch.where(torch.arange(4)[None, :] == 0, 9, SCENE))  # wrong only there
    assert adjusted_rand_index(pred, target).item() == 1.0


@pytest.mark.parametrize("seed", range(20))
def test_ari_and_fg_ari_match_sklearn_on_random_images_and_videos(seed):
    generator = torch.Generator().manual_seed(seed)
    num_pred, num_true = (int(k) for k in torch.randint(1, 8, (2,), generator=generator))
    shape = (3, 6, 6) if seed % 2 else (3, 4, 6, 6)  # images [b,h,w], videos [b,t,h,w]
    target = random_segmentation(generator, shape, num_true)
    pred = random_segmentation(generator, shape, num_pred)
    pred[0] = target[0]  # one sample perfect, one blocky, one noise
    pred[1] = blocky_segmentation(generator, shape[1:], num_pred)
    ari = adjusted_rand_index(pred, target)
    fg_ari = adjusted_rand_index(pred, target, ignore_background=True)
    for sample in range(shape[0]):
        expected = sklearn_ari(pred[sample], target[sample])
        assert ari[sample].item() == pytest.approx(expected, abs=1e-12)
        foreground = target[sample] != 0
        if foreground.any():
            expected_fg = sklearn_ari(pred[sample][foreground], target[sample][foreground])
            assert fg_ari[sample].item() == pytest.approx(expected_fg, abs=1e-12)
        else:
            assert math.isnan(fg_ari[sample].item())


def test_ari_counts_exactly_on_a_long_video():
    # 1.5 million points: pair counts reach 1e12 and their products 1e24.
    generator = torch.Generator().manual_seed(0)
    target = blocky_segmentation(generator, (1, 24, 250, 250), 6)
    pred = torch.where(torch.rand(target.shape, generator=generator) < 0.1, 0, target)
    assert adjusted_rand_index(pred, target).item() == pytest.approx(
        sklearn_ari(pred, target), abs=1e-9
    )
    assert adjusted_rand_index(target, target).item() == 1.0
    assert adjusted_rand_index(target, target, ignore_background=True).item() == 1.0


# --- IoU, mBO, mIoU ---------------------------------------------------------------------------


def test_perfect_segmentation_scores_one_under_any_relabelling():
    relabelled = torch.tensor([3, 0, 8])[SCENE]
    for include_background in (False, True):
        for pred in (SCENE, relabelled):
            assert mean_best_overlap(batch(pred), batch(SCENE), include_background).item() == 1
            miou = mean_intersection_over_union(batch(pred), batch(SCENE), include_background)
            assert miou.item() == 1.0


def test_known_overlaps_with_fewer_predictions_than_objects():
    # RIGHT_HALF's object segment has IoU 4/8 with each object; its other segment IoU 0 with them
    # and 8/8 with the background. mBO lets both objects pick it; mIoU matches it to one object.
    pred, target = batch(RIGHT_HALF), batch(SCENE)
    assert mean_best_overlap(pred, target).item() == pytest.approx(0.5)
    assert mean_intersection_over_union(pred, target).item() == pytest.approx(0.25)
    assert mean_best_overlap(pred, target, include_background=True).item() == pytest.approx(2 / 3)
    with_background = mean_intersection_over_union(pred, target, include_background=True)
    assert with_background.item() == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3


def test_known_overlaps_with_more_predictions_than_objects():
    # Each object split into two columns of 2 of its 4 pixels: every best / matched IoU is 1/2.
    pred, target = batch(SPLIT_OBJECTS), batch(SCENE)
    assert mean_best_overlap(pred, target).item() == pytest.approx(0.5)
    assert mean_intersection_over_union(pred, target).item() == pytest.approx(0.5)
    one_segment = torch.zeros(1, 4, 4, dtype=torch.long)
    assert mean_best_overlap(one_segment, target).item() == pytest.approx(4 / 16)


def test_overlaps_are_invalid_without_true_segments():
    background_only = torch.zeros(2, 4, 4, dtype=torch.long)
    background_only[1] = SCENE
    pred = batch(SCENE, SCENE)
    for score in (
        mean_best_overlap(pred, background_only),
        mean_intersection_over_union(pred, background_only),
    ):
        assert math.isnan(score[0].item()) and score[1].item() == 1.0
    with_background = mean_best_overlap(pred, background_only, include_background=True)
    assert with_background[0].item() == pytest.approx(8 / 16)  # SCENE's left half over all


def test_segment_iou_known_values_with_overlapping_and_padded_true_masks():
    pred = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.bool)  # two halves
    true = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.bool)
    iou = segment_iou(pred[None], true[None])
    assert iou.shape == (1, 2, 3) and iou.dtype == torch.float64
    expected = [[1 / 2, 2 / 3, 0.0], [0.0, 1 / 4, 0.0]]  # third true mask is padding
    torch.testing.assert_close(iou[0], torch.tensor(expected, dtype=torch.float64))
    with pytest.raises(ValueError, match="same b and p"):
        segment_iou(pred[None], true[None, :3])


def test_segment_iou_of_one_hot_masks_equals_the_overlap_of_index_maps():
    generator = torch.Generator().manual_seed(1)
    pred = blocky_segmentation(generator, (2, 8, 8), 4)
    target = blocky_segmentation(generator, (2, 8, 8), 3)
    one_hot = torch.nn.functional.one_hot
    iou = segment_iou(one_hot(pred.flatten(1), 4), one_hot(target.flatten(1), 3))
    best = iou[:, :, 1:].max(dim=1).values
    present = target.flatten(1)[:, :, None].eq(torch.arange(1, 3)).any(dim=1)
    expected = (best * present).sum(1) / present.sum(1)
    assert mean_best_overlap(pred, target).tolist() == pytest.approx(expected.tolist())


# --- Hungarian matching -----------------------------------------------------------------------


def brute_force_best_total(iou):
    rows, cols = iou.shape
    if rows >= cols:
        return max(
            sum(iou[r, c].item() for c, r in enumerate(perm))
            for perm in itertools.permutations(range(rows), cols)
        )
    return brute_force_best_total(iou.T)


@pytest.mark.parametrize("seed", range(30))
def test_hungarian_pairs_reach_the_brute_force_optimum(seed):
    generator = torch.Generator().manual_seed(seed)
    rows, cols = (int(k) for k in torch.randint(1, 6, (2,), generator=generator))
    iou = torch.rand(rows, cols, generator=generator)
    pred_index, true_index = hungarian_pairs(iou)
    assert len(pred_index) == min(rows, cols)
    assert len(set(pred_index)) == len(pred_index) and len(set(true_index)) == len(true_index)
    total = iou[pred_index, true_index].sum().item()
    assert total == pytest.approx(brute_force_best_total(iou))
    matches = match_by_iou(iou, threshold=0.0)
    assert matches.iou.sum().item() == pytest.approx(total)


def test_miou_equals_brute_force_matching_on_random_segmentations():
    generator = torch.Generator().manual_seed(2)
    for _ in range(10):
        num_pred, num_true = (int(k) for k in torch.randint(1, 6, (2,), generator=generator))
        pred = blocky_segmentation(generator, (1, 8, 8), num_pred)
        target = blocky_segmentation(generator, (1, 8, 8), num_true)
        one_hot = torch.nn.functional.one_hot
        iou = segment_iou(one_hot(pred.flatten(1)), one_hot(target.flatten(1)))[0]
        present = one_hot(target.flatten(1)).any(dim=1)[0]
        present[0] = False  # background
        if not present.any():
            continue
        expected = brute_force_best_total(iou[:, present]) / present.sum().item()
        assert mean_intersection_over_union(pred, target).item() == pytest.approx(expected)


def test_match_by_iou_drops_pairs_at_or_below_the_threshold():
    # 3 slots, 2 objects + 1 padded object. The optimum pairs slot 2 with object 0 (0.5) and
    # slot 0 with object 1 (0.1), though slot 0 overlaps object 0 more: matching comes first.
    iou = torch.tensor([[0.45, 0.1, 0.0], [0.0, 0.05, 0.0], [0.5, 0.0, 0.0]])
    matches = match_by_iou(iou, threshold=0.1)
    assert matches.batch_index.tolist() == [0]
    assert matches.pred_index.tolist() == [2] and matches.true_index.tolist() == [0]
    assert matches.iou.tolist() == [0.5]
    loose = match_by_iou(iou, threshold=0.0)
    assert loose.pred_index.tolist() == [2, 0] and loose.true_index.tolist() == [0, 1]
    with pytest.raises(ValueError, match="threshold"):
        match_by_iou(iou, threshold=1.0)


def test_match_by_iou_on_a_batch_with_empty_masks_and_more_slots_than_objects():
    pred = torch.nn.functional.one_hot(batch(SPLIT_OBJECTS, RIGHT_HALF).flatten(1), 6)
    true = torch.nn.functional.one_hot(batch(SCENE, SCENE).flatten(1), 4)[:, :, 1:]  # no bg
    true[1, :, 1] = False  # object 2 of sample 1 is padding
    iou = segment_iou(pred, true)  # [2,6,3]: empty slots and the absent id 3 give zero masks
    matches = match_by_iou(iou, threshold=0.0)
    assert matches.batch_index.tolist() == [0, 0, 1]
    assert matches.true_index.tolist() == [0, 1, 0]
    assert matches.pred_index[2].item() == 3
    assert matches.iou.tolist() == pytest.approx([0.5, 0.5, 0.5])
    slots = torch.arange(2 * 6).reshape(2, 6)
    assert slots[matches.batch_index, matches.pred_index].tolist()[2] == 9
    nothing = match_by_iou(torch.zeros(2, 3, 4), threshold=0.0)
    assert nothing.batch_index.shape == (0,) and nothing.iou.shape == (0,)


# --- Metrics: accumulation, sync states, collection -------------------------------------------


METRICS = {
    "ari": (AdjustedRandIndex, {}, adjusted_rand_index, {}),
    "fg_ari": (
        AdjustedRandIndex,
        {"ignore_background": True},
        adjusted_rand_index,
        {"ignore_background": True},
    ),
    "mbo": (MeanBestOverlap, {}, mean_best_overlap, {}),
    "miou": (MeanIntersectionOverUnion, {}, mean_intersection_over_union, {}),
    "background_claimed": (BackgroundClaimed, {}, background_claimed, {}),
}


def random_batches(seed, shape=(3, 4, 8, 8)):
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(3):
        target = blocky_segmentation(generator, shape, 4)
        target[0] = 0  # an invalid sample for FG-ARI, mBO and mIoU
        batches.append((blocky_segmentation(generator, shape, 5).to(torch.uint8), target))
    return batches


@pytest.mark.parametrize("name", METRICS)
def test_metric_accumulates_the_mean_over_valid_samples(name):
    metric_class, options, per_sample, per_sample_options = METRICS[name]
    metric = metric_class(**options)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(metric.compute().item())
    scores = []
    for pred, target in random_batches(seed=3):
        metric.update(pred, target)
        scores.append(per_sample(pred, target, **per_sample_options))
    scores = torch.cat(scores)
    valid = ~scores.isnan()
    assert valid.sum() == (9 if name == "ari" else 6)
    assert metric.compute().item() == pytest.approx(scores[valid].mean().item(), abs=1e-12)


@pytest.mark.parametrize("name", METRICS)
def test_metric_states_merge_by_sum_as_across_processes(name):
    metric_class, options, _, _ = METRICS[name]
    batches = random_batches(seed=4)
    whole, first, second = (metric_class(**options) for _ in range(3))
    for pred, target in batches:
        whole.update(pred, target)
    first.update(*batches[0])
    for pred, target in batches[1:]:
        second.update(pred, target)
    assert first._reductions == {"score_sum": dim_zero_sum, "num_samples": dim_zero_sum}
    first.merge_state(second)
    assert first.compute().item() == pytest.approx(whole.compute().item(), abs=1e-12)


def test_object_discovery_metrics_keep_ari_and_fg_ari_apart():
    # After a perfect first batch ARI and FG-ARI states are equal; they must not be merged.
    metrics = object_discovery_metrics(prefix="val/")
    metrics.update(batch(SCENE), batch(SCENE))
    pred = batch(torch.where(SCENE == 0, torch.arange(16).reshape(4, 4) + 10, SCENE))
    metrics.update(pred, batch(SCENE))
    results = metrics.compute()
    assert set(results) == {"val/ari", "val/fg_ari", "val/mbo", "val/miou"}
    expected_ari = (1 + adjusted_rand_index(pred, batch(SCENE)).item()) / 2
    assert results["val/ari"].item() == pytest.approx(expected_ari)
    assert results["val/fg_ari"].item() == 1.0
    assert results["val/mbo"].item() == 1.0 and results["val/miou"].item() == 1.0


# --- Where objects' pixels went ----------------------------------------------------------------


def test_pixel_shares_of_perfect_split_and_absorbed_objects():
    perfect, split = object_pixel_shares(batch(SCENE, SPLIT_OBJECTS), batch(SCENE, SCENE))
    assert perfect.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert split.tolist() == [0.5, 0.0, 0.5, 0.0]  # each object in two columns
    # The background's segment (id 7) takes object 1 whole and half of object 2.
    absorbed = torch.tensor([[7, 7, 7, 7], [7, 7, 7, 7], [7, 7, 7, 4], [7, 7, 7, 4]])
    shares = object_pixel_shares(batch(absorbed), batch(SCENE))[0]
    torch.testing.assert_close(shares, torch.tensor([0.25, 0.75, 0.0, 0.0], dtype=torch.float64))


def test_objects_kept_by_one_segment_are_merged():
    three = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 3, 2, 2], [0, 3, 2, 2]])
    # segment 5 keeps objects 1 and 2 whole, segment 6 keeps object 3: two of three merged
    merged = torch.tensor([[0, 0, 5, 5], [0, 0, 5, 5], [0, 6, 5, 5], [0, 6, 5, 5]])
    assert object_pixel_shares(batch(merged), batch(three))[0].tolist() == [1, 0, 0, 2 / 3]
    # object 3's largest share is in segment 5 too: all three merged
    leaked = torch.tensor([[0, 0, 5, 5], [0, 0, 5, 5], [0, 5, 5, 5], [0, 6, 5, 5]])
    torch.testing.assert_close(object_pixel_shares(batch(leaked), batch(three))[0],
                               torch.tensor([5 / 6, 0, 1 / 6, 1], dtype=torch.float64))


def test_pixel_shares_without_objects_or_background():
    no_objects = object_pixel_shares(batch(SCENE), torch.zeros(1, 4, 4, dtype=torch.long))
    assert no_objects.isnan().all()
    objects_only = torch.tensor([[1] * 4] * 2 + [[2] * 4] * 2)
    shares = object_pixel_shares(batch(torch.zeros(4, 4, dtype=torch.long)), batch(objects_only))
    assert shares[0].tolist() == [1.0, 0.0, 0.0, 1.0]  # no segment is the background's


def test_pixel_shares_of_entering_objects():
    # Object 1 is in both frames, kept by segment 5; object 2 enters in the second frame, where
    # the background's segment (7) takes three of its four points.
    target = torch.stack([torch.where(SCENE == 2, 0, SCENE), SCENE])
    pred = torch.where(target == 1, 5, 7)
    pred[1, 3, 3] = 6
    video = (pred[None], target[None])
    torch.testing.assert_close(object_pixel_shares(*video, entering_only=True)[0],
                               torch.tensor([0.25, 0.75, 0.0, 0.0], dtype=torch.float64))
    whole = object_pixel_shares(*video)[0]
    assert whole[0].item() == pytest.approx((1.0 + 0.25) / 2)
    present_from_start = (pred[None], torch.stack([SCENE, SCENE])[None])
    assert object_pixel_shares(*present_from_start, entering_only=True).isnan().all()
    with pytest.raises(ValueError, match=r"videos \[b,t,h,w\]"):
        object_pixel_shares(batch(SCENE), batch(SCENE), entering_only=True)
    metric = ObjectPixelShares(entering_only=True)
    metric.update(*video)
    assert {k: v.item() for k, v in metric.compute().items()} == {
        "entering_kept": 0.25, "entering_background": 0.75, "entering_split": 0.0,
        "entering_merged": 0.0}


def test_object_discovery_metrics_with_pixel_shares():
    metrics = object_discovery_metrics(prefix="val/", pixel_shares=True)
    metrics.update(batch(SPLIT_OBJECTS), batch(SCENE))
    results = {key: value.item() for key, value in metrics.compute().items()}
    assert set(results) == {"val/ari", "val/fg_ari", "val/mbo", "val/miou", "val/kept",
                            "val/background", "val/split", "val/merged",
                            "val/fg_ari_background_returned", "val/fg_ari_split_returned",
                            "val/fg_ari_outline_returned", "val/background_claimed"}
    assert (results["val/kept"], results["val/background"], results["val/split"]) == (0.5, 0, 0.5)


def test_masks_grown_over_the_background_leave_fg_ari_whole_and_show_as_claimed():
    grown = SCENE.clone()
    grown[0:2, 1] = 1  # object 1's segment takes the two background points beside it
    pred, target = batch(grown, SCENE), batch(SCENE, SCENE)
    assert adjusted_rand_index(pred, target, ignore_background=True).tolist() == [1.0, 1.0]
    assert adjusted_rand_index(pred, target)[0] < 0.8
    assert background_claimed(pred, target).tolist() == [2 / 8, 0.0]
    assert background_claimed(batch(SCENE), torch.zeros(1, 4, 4, dtype=torch.long)).isnan().all()
    objects_only = torch.where(SCENE == 0, 3, SCENE)
    assert background_claimed(batch(SCENE), batch(objects_only)).isnan().all()
    metric = BackgroundClaimed()
    metric.update(pred, target)
    metric.update(batch(SCENE), batch(objects_only))
    assert metric.compute().item() == pytest.approx(1 / 8)


def test_pixel_shares_metric_averages_valid_samples_and_merges_by_sum():
    whole, first, second = ObjectPixelShares(), ObjectPixelShares(), ObjectPixelShares()
    rows = []
    for index, (pred, target) in enumerate(random_batches(seed=5)):
        whole.update(pred, target)
        (first if index == 0 else second).update(pred, target)
        rows.append(object_pixel_shares(pred, target))
    rows = torch.cat(rows)
    valid = ~rows.isnan().any(dim=1)
    assert valid.sum() == 6  # each batch's first sample has no objects
    results = whole.compute()
    assert list(results) == ["kept", "background", "split", "merged"]
    for column, part in enumerate(results):
        assert results[part].item() == pytest.approx(rows[valid, column].mean().item(), abs=1e-12)
    first.merge_state(second)
    merged = first.compute()
    for part in results:
        assert merged[part].item() == pytest.approx(results[part].item(), abs=1e-12)


# --- Fixed grid baselines ---------------------------------------------------------------------


def test_fixed_grid_segmentation_cells():
    assert fixed_grid_segmentation(4, 4, 2, 2).tolist() == [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 3, 3],
        [2, 2, 3, 3],
    ]
    uneven = fixed_grid_segmentation(5, 7, 2, 3)
    assert uneven[:, 0].tolist() == [0, 0, 0, 3, 3]
    assert uneven[0].tolist() == [0, 0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="3x1 grid"):
        fixed_grid_segmentation(2, 2, 3, 1)


def test_fixed_grid_baselines_shapes_and_labels():
    target = torch.zeros(2, 3, 12, 12, dtype=torch.long)  # [b,t,h,w]
    expected_counts = {
        "grid_2x2": 4,
        "grid_3x3": 9,
        "horizontal_stripes": 4,
        "vertical_stripes": 4,
    }
    assert set(FIXED_GRID_BASELINES) == set(expected_counts)
    for name, baseline in FIXED_GRID_BASELINES.items():
        segmentation = baseline(target)
        assert segmentation.shape == target.shape and segmentation.dtype == torch.int64
        assert segmentation.unique().tolist() == list(range(expected_counts[name]))
        assert (segmentation == segmentation[0, 0]).all()  # same cells in every frame
        areas = torch.bincount(segmentation[0, 0].flatten())
        assert (areas == 144 // expected_counts[name]).all()
    horizontal = FIXED_GRID_BASELINES["horizontal_stripes"](target)[0, 0]
    assert (horizontal == horizontal[:, :1]).all()  # constant along each row
    vertical = FIXED_GRID_BASELINES["vertical_stripes"](target)[0, 0]
    assert (vertical == vertical[:1, :]).all()  # constant down each column


def test_fixed_grid_baseline_scores_like_any_segmentation():
    grid = FixedGridSegmentation(rows=2, cols=2)
    quadrants = grid(torch.zeros(1, 4, 4, dtype=torch.long))
    assert adjusted_rand_index(quadrants, batch(SCENE)).item() == pytest.approx(
        sklearn_ari(quadrants, SCENE)
    )
    # Quadrant 1 is object 1 exactly, quadrant 3 object 2 exactly.
    assert mean_best_overlap(quadrants, batch(SCENE)).item() == 1.0
    with pytest.raises(ValueError, match="rows and cols"):
        FixedGridSegmentation(rows=0, cols=2)


# --- What each failure costs FG-ARI -------------------------------------------------------------


def outline_by_hand(target):
    """Points with a 4-neighbour of another id in their frame, one by one."""
    outline = torch.zeros_like(target, dtype=torch.bool)
    height, width = target.shape[-2:]
    for index in itertools.product(*map(range, target.shape[:-2])):
        frame = target[index]
        for y, x in itertools.product(range(height), range(width)):
            neighbours = [(y + dy, x + dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
            outline[index][y, x] = any(frame[n].item() != frame[y, x].item() for n in neighbours
                                       if 0 <= n[0] < height and 0 <= n[1] < width)
    return outline


def repaired_by_hand(pred, target):
    """The repairs pixel by pixel, scored by scikit-learn: the reference for `repaired_fg_ari`."""
    background = pred[target == 0].bincount().argmax().item() if (target == 0).any() else -1
    outline = outline_by_hand(target)
    repaired = [pred.clone(), pred.clone(), pred.clone()]
    fresh = int(pred.max()) + 1
    for obj in target.unique().tolist():
        if obj <= 0:
            continue
        inside = target == obj
        counts = pred[inside].bincount(minlength=fresh)
        if background >= 0:
            counts[background] = 0
        keeper = counts.argmax().item() if counts.max() > 0 else fresh + obj
        repaired[0][inside & (pred == background)] = keeper
        repaired[1][inside & (pred != background)] = keeper
        repaired[2][inside & outline & (pred == background)] = keeper
    foreground = target > 0
    if not foreground.any():
        return [math.nan] * 3
    return [sklearn_ari(r[foreground], target[foreground]) for r in repaired]


def test_repairs_hand_back_the_background_and_the_split_share():
    perfect, split = repaired_fg_ari(batch(SCENE, SPLIT_OBJECTS), batch(SCENE, SCENE))
    assert perfect.tolist() == [1.0, 1.0, 1.0]
    fg_ari_of_split = adjusted_rand_index(batch(SPLIT_OBJECTS), batch(SCENE), True).item()
    assert fg_ari_of_split < 0.5
    assert split.tolist() == [pytest.approx(fg_ari_of_split), 1.0, pytest.approx(fg_ari_of_split)]
    # The background's segment (7) takes object 1 whole and half of object 2; segment 4 keeps
    # the other half. Handed back, object 1 gets a segment of its own and object 2 segment 4.
    absorbed = torch.tensor([[7, 7, 7, 7], [7, 7, 7, 7], [7, 7, 7, 4], [7, 7, 7, 4]])
    returned, unsplit, outline = repaired_fg_ari(batch(absorbed), batch(SCENE))[0].tolist()
    assert returned == 1.0
    # Handing back the outline leaves object 1's corner (0, 3), which touches no other id, in
    # the background's segment; both taken points of object 2 are on its outline.
    outline_of_scene = outline_by_hand(SCENE)
    assert outline_of_scene[0, 3].item() is False
    expected = absorbed.clone()
    expected[(SCENE == 1) & outline_of_scene] = 8
    expected[(SCENE == 2) & (absorbed == 7)] = 4
    assert outline == pytest.approx(sklearn_ari(expected[SCENE > 0], SCENE[SCENE > 0]))
    assert unsplit == pytest.approx(adjusted_rand_index(batch(absorbed), batch(SCENE), True).item())


def test_repairs_match_relabelling_every_pixel_by_hand():
    for pred, target in random_batches(seed=11):
        scores = repaired_fg_ari(pred, target)
        for sample in range(len(pred)):
            expected = repaired_by_hand(pred[sample].long(), target[sample])
            torch.testing.assert_close(scores[sample], torch.tensor(expected, dtype=torch.float64),
                                       equal_nan=True)
    assert scores[0].isnan().all()  # no objects: invalid, as for FG-ARI


def test_repaired_fg_ari_metric_averages_valid_samples():
    metric = RepairedFgAri()
    rows = []
    for pred, target in random_batches(seed=12):
        metric.update(pred, target)
        rows.append(repaired_fg_ari(pred, target))
    rows = torch.cat(rows)
    valid = ~rows.isnan().any(dim=1)
    results = metric.compute()
    assert list(results) == ["fg_ari_background_returned", "fg_ari_split_returned",
                             "fg_ari_outline_returned"]
    for column, name in enumerate(results):
        assert results[name].item() == pytest.approx(rows[valid, column].mean().item(), abs=1e-12)
