"""Matching slots to objects: hand-made masks, then a tiny encoder on a tiny CLEVRER directory."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from downstream.clevrer_objects import ClevrerObjects, ClevrerObjectsConfig
from downstream.labelled_objects import AttributeSpec, LabelledFrames
from downstream.matched_slots import (
    MatchedSlots,
    MatchingConfig,
    extract_matched_slots,
    match_sample,
    match_stored_slots,
)
from ocl.modeling import SmoothSAModel
from tasks.slots import SlotProvenance, SlotShardWriter, SlotSpec, load_slots
from tests.downstream.probe_setting import encode_directly
from tests.ocl.tiny import tiny_config
from tests.tasks.clevrer_directory import make_clevrer_directory

SPECS = (AttributeSpec("class", "category", ("a", "b", "c", "d")),)


def attention_of(segmentation: torch.Tensor, num_slots: int) -> torch.Tensor:
    """`[t,H,W]` slot ids -> `[t,n,H,W]` one-hot attention whose argmax is the segmentation."""
    return rearrange(F.one_hot(segmentation, num_slots).float(), "t h w n -> t n h w")


def hand_made_frame() -> tuple[torch.Tensor, LabelledFrames]:
    """An 8x8 frame: 4 slots, 4 object columns of which one is padding (empty).

    Slot segmentation: slot 0 rows 0-3, slot 1 rows 4-7 columns 0-3, slot 2 rows 4-7 columns
    4-6, slot 3 column 7 of rows 4-7. Objects: 0 = slot 2's region exactly (IoU 1), 1 = the
    left half of slot 0 (IoU 0.5), 2 = padding, 3 = one pixel of slot 1 (IoU 1/16, under 0.1).
    """
    segmentation = torch.zeros(1, 8, 8, dtype=torch.int64)
    segmentation[0, 4:, :4] = 1
    segmentation[0, 4:, 4:7] = 2
    segmentation[0, 4:, 7] = 3
    objects = torch.zeros(1, 4, 8, 8, dtype=torch.bool)
    objects[0, 0, 4:, 4:7] = True
    objects[0, 1, :4, :4] = True
    objects[0, 3, 7, 0] = True
    sample = LabelledFrames(
        sample_id=7, frames=torch.zeros(1, 3, 8, 8, dtype=torch.uint8), object_masks=objects,
        attributes={"class": torch.tensor([[2, 0, -1, 3]])},
    )
    return attention_of(segmentation, 4), sample


def test_hungarian_matching_drops_padding_and_pairs_under_the_threshold():
    attention, sample = hand_made_frame()
    slots = torch.arange(4.0)[None, :, None].expand(1, 4, 3)  # slot i holds the value i
    matched = match_sample(slots, attention, sample, SPECS, threshold=0.1)
    assert matched.num_objects == 3  # padding is not an object
    assert matched.num_matched == 2  # object 3 (IoU 1/16) dropped; slot 3 unmatched
    assert matched.slots[:, 0].tolist() == [2.0, 0.0]  # sorted by object: 0 then 1
    assert matched.iou.tolist() == pytest.approx([1.0, 0.5])
    assert matched.attributes["class"].tolist() == [2, 0]
    assert matched.boxes.tolist() == [[0.5, 0.5, 7 / 8, 1.0], [0.0, 0.0, 0.5, 0.5]]
    assert matched.sample_id.tolist() == [7, 7] and matched.frame_index.tolist() == [0, 0]
    assert matched.slot_index.tolist() == [2, 0] and matched.object_index.tolist() == [0, 1]

    lenient = match_sample(slots, attention, sample, SPECS, threshold=0.05)
    assert lenient.num_matched == 3 and lenient.attributes["class"].tolist() == [2, 0, 3]
    assert lenient.slots[:, 0].tolist() == [2.0, 0.0, 1.0]


def test_videos_are_matched_frame_by_frame():
    # frame 0: the object under slot 1; frame 1: it moved under slot 0; frame 2: off screen
    segmentation = torch.zeros(3, 4, 4, dtype=torch.int64)
    segmentation[:, :, 2:] = 1
    objects = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    objects[0, 0, :, 2:] = True
    objects[1, 0, :, :2] = True
    sample = LabelledFrames(3, torch.zeros(3, 3, 4, 4, dtype=torch.uint8), objects,
                            {"class": torch.tensor([[1], [1], [1]])})
    slots = torch.tensor([[[0.0], [1.0]]]).expand(3, 2, 1)
    matched = match_sample(slots, attention_of(segmentation, 2), sample, SPECS, threshold=0.1)
    assert matched.frame_index.tolist() == [0, 1]
    assert matched.slots[:, 0].tolist() == [1.0, 0.0]
    assert matched.num_objects == 2


def test_frame_count_mismatch_is_a_clear_error():
    attention, sample = hand_made_frame()
    with pytest.raises(ValueError, match="2 frames of slots, 1 of ground truth"):
        match_sample(torch.zeros(2, 4, 3), attention.expand(2, -1, -1, -1), sample, SPECS, 0.1)


def test_concatenate_sums_counts_and_keeps_order():
    attention, sample = hand_made_frame()
    part = match_sample(torch.randn(1, 4, 3), attention, sample, SPECS, 0.1)
    joined = MatchedSlots.concatenate([MatchedSlots.empty(3, SPECS), part, part])
    assert joined.num_matched == 4 and joined.num_objects == 6
    assert torch.equal(joined.slots[2:], part.slots)


@pytest.fixture(scope="module")
def clevrer_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("clevrer")
    make_clevrer_directory(root / "data", num_frames=4)
    return ClevrerObjects(root / "data", "train", ClevrerObjectsConfig(),
                          cache_dir=root / "cache")


def test_clevrer_source_labels_every_object_in_every_frame(clevrer_source):
    sample = clevrer_source[1]  # video 1: three objects moving right
    assert sample.frames.shape == (4, 3, 32, 48) and sample.object_masks.shape == (4, 3, 32, 48)
    assert sample.object_masks.flatten(2).sum(-1).tolist() == [[48] * 3] * 4
    assert sample.attributes["color"][0].tolist() == [2, 3, 7]  # blue, green, yellow
    assert sample.attributes["position"][:, 0, 0].tolist() == pytest.approx([0, 0.1, 0.2, 0.3])
    assert (sample.attributes["moving"] == 0).all()  # speed 0.1 < 0.2
    assert [spec.name for spec in clevrer_source.attribute_specs] == [
        "color", "shape", "material", "position", "moving"]


@pytest.mark.parametrize("video", [True, False])
def test_extraction_counts_are_consistent(clevrer_source, video):
    torch.manual_seed(0)
    encoder = SmoothSAModel(tiny_config(video=video)).eval()
    matched = extract_matched_slots(encoder, clevrer_source, MatchingConfig(batch_size=2))
    samples = [clevrer_source[i] for i in range(len(clevrer_source))]
    assert matched.num_objects == sum(int(s.object_masks.flatten(2).any(-1).sum())
                                      for s in samples)
    assert 0 < matched.num_matched <= matched.num_objects
    assert (matched.iou > 0.1).all()
    assert matched.slots.shape == (matched.num_matched, 32)
    # one-to-one in every frame: no slot and no object is matched twice
    frames = torch.stack([matched.sample_id, matched.frame_index], dim=1)
    for index in (matched.slot_index, matched.object_index):
        assert len(torch.cat([frames, index[:, None]], 1).unique(dim=0)) == matched.num_matched
    # a matched slot is a row of the encoder's output
    first = samples[0]
    slots, _ = encode_directly(encoder, first)
    mine = matched.sample_id == first.sample_id
    for slot, frame in zip(matched.slots[mine], matched.frame_index[mine], strict=True):
        assert (slots[frame] - slot).abs().amax(dim=-1).min() < 1e-5
    # batching does not change anything; a stricter threshold keeps a subset
    again = extract_matched_slots(encoder, clevrer_source, MatchingConfig(batch_size=3))
    for name in ("sample_id", "frame_index", "slot_index", "object_index"):
        assert torch.equal(getattr(again, name), getattr(matched, name))
    torch.testing.assert_close(again.slots, matched.slots, rtol=0, atol=1e-5)  # float sums
    lenient = extract_matched_slots(encoder, clevrer_source, MatchingConfig(threshold=0.0))
    assert lenient.num_matched >= matched.num_matched
    decoder = extract_matched_slots(encoder, clevrer_source, MatchingConfig(mask_source="decoder"))
    assert decoder.num_objects == matched.num_objects


def test_stored_slots_match_like_the_encoder(clevrer_source, tmp_path):
    torch.manual_seed(0)
    encoder = SmoothSAModel(tiny_config()).eval()
    spec = SlotSpec(num_slots=4, slot_dim=32, dtype="float32", mask_size=encoder.grid)
    with SlotShardWriter(tmp_path / "slots", spec, SlotProvenance("tiny", "hash", 1)) as writer:
        for sample in clevrer_source:
            slots, attention = encode_directly(encoder, sample)
            writer.write(sample.sample_id, slots.numpy(), attention.numpy())
    stored = match_stored_slots(load_slots(tmp_path / "slots", cache_dir=tmp_path / "hf"),
                                clevrer_source)
    direct = extract_matched_slots(encoder, clevrer_source)
    assert stored.num_objects == direct.num_objects
    assert torch.equal(stored.sample_id, direct.sample_id)
    assert torch.allclose(stored.slots, direct.slots, atol=1e-5)
