"""The slot-feature dataset: writing Parquet shards, loading them as a Hub repo holds them."""

import shutil

import numpy as np
import pytest
import yaml
from datasets import Features, Value

from tasks.arrow_arrays import array_rows
from tasks.slots import (
    SlotProvenance,
    SlotShard,
    SlotShardWriter,
    SlotSpec,
    load_slots,
    shard_name,
    slot_dataset_card,
    slot_features,
    slot_provenance,
    slot_spec,
)

PROVENANCE = SlotProvenance(encoder_id="tiny/smoothsa-video", config_hash="0123abcd",
                            frame_stride=4)


def video_slots(video_index: int, num_frames: int, spec: SlotSpec) -> np.ndarray:
    """[t,n,d]: values that say which video, frame, slot and channel they are."""
    generator = np.random.default_rng(video_index)
    return generator.standard_normal((num_frames, spec.num_slots, spec.slot_dim))


def write_slot_folder(folder, spec, video_indices, rows_per_shard=2, num_frames=5):
    with SlotShardWriter(folder, spec, PROVENANCE, rows_per_shard=rows_per_shard) as writer:
        for video_index in video_indices:
            masks = None
            if spec.mask_size is not None:
                masks = np.random.default_rng(video_index).random(
                    (num_frames, spec.num_slots, *spec.mask_size))
            writer.write(video_index, video_slots(video_index, num_frames, spec), masks)
    (folder / "README.md").write_text(slot_dataset_card(spec, PROVENANCE))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_written_slots_load_back(tmp_path, dtype):
    spec = SlotSpec(num_slots=3, slot_dim=8, dtype=dtype, mask_size=(4, 6))
    folder = tmp_path / "slots"
    write_slot_folder(folder, spec, [7, 3, 11, 5, 9])
    assert sorted(path.name for path in (folder / "data").iterdir()) == [
        "train-00000-of-00003.parquet", "train-00001-of-00003.parquet",
        "train-00002-of-00003.parquet",
    ]
    slots = load_slots(folder, cache_dir=tmp_path / "hf")
    assert slot_spec(slots.features) == spec
    assert slot_provenance(slots) == PROVENANCE
    assert slots["video_index"] == [7, 3, 11, 5, 9]
    table = slots.with_format("arrow")[:]
    for video_index, stored, masks in zip(table["video_index"].to_pylist(),
                                          array_rows(table["slots"]),
                                          array_rows(table["masks"]), strict=True):
        assert stored.dtype == np.dtype(dtype) and stored.shape == (5, 3, 8)
        expected = video_slots(video_index, 5, spec).astype(dtype)
        np.testing.assert_array_equal(stored, expected)
        assert masks.shape == (5, 3, 4, 6) and masks.dtype == np.dtype(dtype)


def test_a_folder_extracted_again_is_read_anew(tmp_path):
    spec = SlotSpec(num_slots=2, slot_dim=4)
    folder = tmp_path / "slots"
    write_slot_folder(folder, spec, [0, 1], rows_per_shard=4)
    first = np.asarray(load_slots(folder, cache_dir=tmp_path / "hf")[0]["slots"])
    np.testing.assert_array_equal(first, video_slots(0, 5, spec).astype(spec.dtype))
    shutil.rmtree(folder)
    write_slot_folder(folder, spec, [1, 0], rows_per_shard=4)  # same shard names, other rows
    again = load_slots(folder, cache_dir=tmp_path / "hf")
    assert again["video_index"] == [1, 0]
    np.testing.assert_array_equal(np.asarray(again[0]["slots"]),
                                  video_slots(1, 5, spec).astype(spec.dtype))


def test_a_missing_split_is_named(tmp_path):
    write_slot_folder(tmp_path / "slots", SlotSpec(num_slots=2, slot_dim=4), [0])
    with pytest.raises(ValueError, match="no validation split"):
        load_slots(tmp_path / "slots", "validation")


def test_splits_joined_with_a_plus_load_as_one(tmp_path):
    spec = SlotSpec(num_slots=2, slot_dim=4)
    folder = tmp_path / "slots"
    write_slot_folder(folder, spec, [0, 1, 2])
    with SlotShardWriter(folder, spec, PROVENANCE, split="validation") as writer:
        for video_index in (5, 6):
            writer.write(video_index, video_slots(video_index, 5, spec))
    joined = load_slots(folder, "validation+train", cache_dir=tmp_path / "hf")
    assert joined["video_index"] == [5, 6, 0, 1, 2]
    np.testing.assert_array_equal(np.asarray(joined[2]["slots"]),
                                  video_slots(0, 5, spec).astype(spec.dtype))
    with pytest.raises(ValueError, match="no test split"):
        load_slots(folder, "train+test")


def test_streaming_load(tmp_path):
    spec = SlotSpec(num_slots=2, slot_dim=4)
    write_slot_folder(tmp_path / "slots", spec, [0, 1, 2])
    streamed = load_slots(tmp_path / "slots", streaming=True)
    assert [row["video_index"] for row in streamed] == [0, 1, 2]


def test_writer_rejects_bad_rows(tmp_path):
    spec = SlotSpec(num_slots=3, slot_dim=8)
    writer = SlotShardWriter(tmp_path / "slots", spec, PROVENANCE)
    with pytest.raises(ValueError, match=r"video 4: slots of shape \[5, 3, 9\], expected \[t, 3"):
        writer.write(4, np.zeros((5, 3, 9)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        writer.write(4, np.full((5, 3, 8), np.nan))
    with pytest.raises(ValueError, match="floating point"):
        writer.write(4, np.zeros((5, 3, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="no mask_size"):
        writer.write(4, np.zeros((5, 3, 8)), np.zeros((5, 3, 2, 2)))
    writer.write(4, np.zeros((5, 3, 8)))
    with pytest.raises(ValueError, match="video 4 was already written"):
        writer.write(4, np.zeros((5, 3, 8)))
    writer.close()
    with pytest.raises(FileExistsError):
        SlotShardWriter(tmp_path / "slots", spec, PROVENANCE)


def test_extra_columns_are_written_and_required(tmp_path):
    spec = SlotSpec(num_slots=2, slot_dim=4)
    extra = Features({"note": Value("string"), "count": Value("int32")})
    with SlotShardWriter(tmp_path / "slots", spec, PROVENANCE, extra_features=extra) as writer:
        with pytest.raises(ValueError, match=r"video 0: extra columns \['note'\], the shard"):
            writer.write(0, np.zeros((3, 2, 4)), extra={"note": "a"})
        writer.write(0, np.zeros((3, 2, 4)), extra={"note": "a", "count": 3})
    (tmp_path / "slots" / "README.md").write_text(slot_dataset_card(spec, PROVENANCE))
    slots = load_slots(tmp_path / "slots", cache_dir=tmp_path / "hf")
    assert slot_spec(slots.features) == spec
    assert slots[0]["note"] == "a" and slots[0]["count"] == 3
    with pytest.raises(ValueError, match="'slots' is a slot dataset column"):
        slot_features(spec, Features({"slots": Value("int32")}))


def test_interrupted_writing_leaves_no_shards(tmp_path):
    spec = SlotSpec(num_slots=3, slot_dim=8)
    with pytest.raises(RuntimeError):
        with SlotShardWriter(tmp_path / "slots", spec, PROVENANCE, rows_per_shard=1) as writer:
            writer.write(0, np.zeros((2, 3, 8)))
            writer.write(1, np.zeros((2, 3, 8)))
            raise RuntimeError("extraction crashed")
    assert list((tmp_path / "slots" / "data").iterdir()) == []


def test_spec_validation():
    with pytest.raises(ValueError, match="dtype"):
        SlotSpec(num_slots=3, slot_dim=8, dtype="bfloat16")
    with pytest.raises(ValueError, match="frame_stride"):
        SlotProvenance("encoder", "hash", 0)


def test_array_rows_of_a_slice_and_a_selection(tmp_path):
    spec = SlotSpec(num_slots=2, slot_dim=4, dtype="float32")
    write_slot_folder(tmp_path / "slots", spec, [0, 1, 2, 3], num_frames=3)
    slots = load_slots(tmp_path / "slots", cache_dir=tmp_path / "hf")
    for view, videos in [(slots.with_format("arrow")[1:3], [1, 2]),
                         (slots.select([3, 0]).with_format("arrow")[:], [3, 0])]:
        rows = array_rows(view["slots"])
        assert [row.shape for row in rows] == [(3, 2, 4)] * 2
        for row, video_index in zip(rows, videos, strict=True):
            np.testing.assert_array_equal(row, video_slots(video_index, 3, spec)
                                          .astype(np.float32))
    with pytest.raises(TypeError, match="ArrayXD"):
        array_rows(slots.with_format("arrow")[:]["video_index"])


def test_shards_named_up_front_and_an_unfinished_folder_is_refused(tmp_path):
    spec = SlotSpec(num_slots=3, slot_dim=8)
    folder = tmp_path / "slots"
    with SlotShard(folder / "data" / shard_name("train", 1, 2), spec, PROVENANCE) as shard:
        shard.write(5, np.zeros((2, 3, 8)))
        assert not shard.path.exists() and shard.temporary_path.exists()
    assert [path.name for path in (folder / "data").iterdir()] == ["train-00001-of-00002.parquet"]
    (folder / "README.md").write_text(slot_dataset_card(spec, PROVENANCE))
    with pytest.raises(ValueError, match="train misses 1 of 2 shards .*train-00000-of-00002"):
        load_slots(folder, cache_dir=tmp_path / "hf")
    with pytest.raises(ValueError, match="outside"):
        shard_name("train", 2, 2)


def test_card_front_matter_holds_configs_and_metadata():
    spec = SlotSpec(num_slots=3, slot_dim=8, mask_size=(4, 4))
    card = slot_dataset_card(spec, PROVENANCE, ("train", "test"),
                             {"seed": 1, "image_size": (64, 64)})
    front_matter = yaml.safe_load(card.split("---\n")[1])
    assert [entry["split"] for entry in front_matter["configs"][0]["data_files"]] == [
        "train", "test"]
    assert front_matter["slot_dataset"] == {
        "encoder_id": "tiny/smoothsa-video", "config_hash": "0123abcd", "frame_stride": 4,
        "slots_shape": ["t", 3, 8], "masks_shape": ["t", 3, 4, 4], "dtype": "float16",
        "seed": 1, "image_size": [64, 64],
    }
