"""Slot extraction: a tiny encoder over a tiny CLEVRER-layout folder, loaded back through
`datasets`; resuming, process splits, the card, bad input, and publishing without a network."""

from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
import torch
import yaml

from downstream.extract import (
    ExtractionConfig,
    extract_slots,
    main,
    parse_arguments,
    prepare_extraction,
    run_shards,
)
from downstream.extraction_plan import write_record
from downstream.hub_publishing import HubPublishingError, push_slot_folder
from downstream.slot_encoding import video_noise
from ocl.modeling import SmoothSAModel
from tasks.arrow_arrays import array_rows
from tasks.bad_input import BadInputError
from tasks.slots import SlotShard, load_slots
from tasks.video_decoding import decode_video
from tests.ocl.tiny import tiny_config
from tests.tasks.clevrer_directory import make_clevrer_directory

SPLITS = {"train": (0, 1, 2, 3, 4), "validation": (10000, 10001)}
SECRET = "hf_doNotPrintThisTokenAnywhere0123"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The encoder folder and the CLEVRER-layout data folder (6 frames of 32x48)."""
    root = tmp_path_factory.mktemp("extraction")
    torch.manual_seed(0)
    SmoothSAModel(tiny_config("cnn", "broadcast")).save_pretrained(root / "encoder")
    make_clevrer_directory(root / "clevrer", SPLITS, num_frames=6)
    return root / "encoder", root / "clevrer"


def config_for(folders, out, **fields) -> ExtractionConfig:
    encoder, data = folders
    values = dict(encoder=str(encoder), data=str(data), out=str(out), frame_stride=2,
                  chunk_frames=2, videos_per_shard=2, batch_videos=2, dtype="float32",
                  store_masks=True, seed=3)
    values.update(fields)
    return ExtractionConfig(**values)


@pytest.fixture(scope="module")
def reference(folders, tmp_path_factory):
    """An uninterrupted extraction, in one process."""
    out = tmp_path_factory.mktemp("reference") / "slots"
    extract_slots(config_for(folders, out))
    return out


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def expected_output(folders, video_index: int, seed: int = 3):
    """The encoder's own slots and attention on the video's frames, in one call."""
    encoder, data = folders
    model = SmoothSAModel.from_pretrained(encoder).eval()
    split = next(name for name, indices in SPLITS.items() if video_index in indices)
    path = (data / "videos" / split / f"video_{video_index // 1000 * 1000:05d}-"
            f"{video_index // 1000 * 1000 + 1000:05d}" / f"video_{video_index:05d}.mp4")
    frames = torch.from_numpy(decode_video(path, 2, (32, 32)).frames).float() / 255
    with torch.no_grad():
        output = model(frames[None], noise=video_noise(seed, video_index, model.config)[None],
                       decode=False)
    return output.slots[0].numpy(), output.attention[0].numpy()


def test_extracted_slots_load_back_equal_to_the_encoders(folders, reference, tmp_path):
    assert sorted(path.name for path in (reference / "data").iterdir()) == [
        "train-00000-of-00003.parquet", "train-00001-of-00003.parquet",
        "train-00002-of-00003.parquet", "validation-00000-of-00001.parquet",
    ]
    loaded = datasets.load_dataset(str(reference), cache_dir=str(tmp_path / "hf"))
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"]["video_index"] == [0, 1, 2, 3, 4]
    assert loaded["validation"]["video_index"] == [10000, 10001]
    for split in SPLITS:
        slots = load_slots(reference, split=split, cache_dir=tmp_path / "hf")
        table = slots.with_format("arrow")[:]
        for video_index, stored, masks in zip(table["video_index"].to_pylist(),
                                              array_rows(table["slots"]),
                                              array_rows(table["masks"]), strict=True):
            expected_slots, expected_attention = expected_output(folders, video_index)
            assert stored.shape == (3, 4, 32) and masks.shape == (3, 4, 16, 16)
            # batched and streamed in chunks of 2 frames versus one whole-clip call
            np.testing.assert_allclose(stored, expected_slots, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(masks, expected_attention, rtol=1e-5, atol=1e-6)
        assert set(slots["encoder_id"]) == {"encoder"} and set(slots["frame_stride"]) == {2}


def test_card_metadata_parses(reference):
    text = (reference / "README.md").read_text()
    assert text.startswith("---\n")
    metadata = yaml.safe_load(text.split("---\n")[1])
    assert metadata["configs"][0]["data_files"] == [
        {"split": "train", "path": "data/train-*.parquet"},
        {"split": "validation", "path": "data/validation-*.parquet"},
    ]
    card = metadata["slot_dataset"]
    assert card["encoder_id"] == "encoder" and card["frame_stride"] == 2
    assert card["slots_shape"] == ["t", 4, 32] and card["masks_shape"] == ["t", 4, 16, 16]
    assert card["dtype"] == "float32" and card["seed"] == 3 and card["precision"] == "fp32"
    assert card["encoder"]["revision"] is None and card["encoder"]["config"]["num_slots"] == 4
    assert len(card["encoder"]["weights_hash"]) == 16 and len(card["config_hash"]) == 16
    assert card["data"]["layout"] == "CLEVRER" and card["data"]["name"] == "clevrer"
    assert card["data"]["splits"]["train"]["videos"] == 5
    assert card["data"]["splits"]["validation"]["shards"] == 1
    assert card["image_size"] == [32, 32]
    assert "load_slots" in text and str(reference.parent) not in text  # no local paths


def test_interrupted_run_resumes_to_identical_output(folders, reference, tmp_path, monkeypatch,
                                                     capsys):
    out = tmp_path / "slots"
    write = SlotShard.write
    rows = []

    def crash_on_the_third_row(shard, *arguments):
        rows.append(1)
        if len(rows) == 3:
            raise KeyboardInterrupt("killed")
        write(shard, *arguments)

    monkeypatch.setattr(SlotShard, "write", crash_on_the_third_row)
    with pytest.raises(KeyboardInterrupt):
        extract_slots(config_for(folders, out))
    monkeypatch.undo()
    assert sorted(path.name for path in (out / "data").iterdir()) == [
        "train-00000-of-00003.parquet"]  # the second shard's partial file was removed
    assert not (out / "README.md").exists()
    with pytest.raises(ValueError, match="unfinished slot dataset: train misses 2 of 3"):
        load_slots(out, cache_dir=tmp_path / "hf")
    # what a killed process leaves: a partial temporary file; the rerun overwrites it
    (out / "data" / ".train-00001-of-00003.parquet.tmp").write_bytes(b"partial")

    summary = extract_slots(config_for(folders, out))
    assert (summary.shards_skipped, summary.shards_written, summary.videos_encoded) == (1, 3, 5)
    assert folder_bytes(out) == folder_bytes(reference)

    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    capsys.readouterr()
    summary = extract_slots(config_for(folders, out))
    assert "nothing to do" in capsys.readouterr().out
    assert (summary.shards_written, summary.videos_encoded) == (0, 0)
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before


def test_any_process_split_gives_identical_output(folders, reference, tmp_path):
    out = tmp_path / "slots"
    extraction = prepare_extraction(config_for(folders, out), "cpu")
    write_record(out, extraction.record)  # as the main process does before any shard
    # the second of three processes first, then the third, then the first
    written = [run_shards(extraction, index, 3, show_progress=False) for index in (1, 2, 0)]
    assert written == [(1, 2), (1, 1), (2, 4)]
    summary = extract_slots(config_for(folders, out))  # nothing left but the card and record
    assert (summary.shards_skipped, summary.shards_written) == (4, 0)
    assert folder_bytes(out) == folder_bytes(reference)


def test_noise_depends_only_on_seed_and_video():
    config = tiny_config()
    assert torch.equal(video_noise(3, 10000, config), video_noise(3, 10000, config))
    assert not torch.equal(video_noise(3, 10000, config), video_noise(3, 10001, config))
    assert not torch.equal(video_noise(3, 1, config), video_noise(4, 1, config))


def test_image_encoder_encodes_every_frame_alone(folders, tmp_path):
    """Also decodes in a worker process."""
    encoder_folder = tmp_path / "image-encoder"
    torch.manual_seed(1)
    model = SmoothSAModel(tiny_config("cnn", "broadcast", video=False)).eval()
    model.save_pretrained(encoder_folder)
    out = tmp_path / "slots"
    extract_slots(config_for(folders, out, encoder=str(encoder_folder), splits=["validation"],
                             max_videos=1, store_masks=False, dtype="float16", chunk_frames=3,
                             decode_workers=1))
    row = load_slots(out, split="validation", cache_dir=tmp_path / "hf").with_format("arrow")[:]
    (stored,) = array_rows(row["slots"])
    frames = torch.from_numpy(decode_video(
        next((folders[1] / "videos" / "validation").rglob("video_10000.mp4")), 2, (32, 32)
    ).frames).float() / 255
    with torch.no_grad():
        expected = model(frames, noise=video_noise(3, 10000, model.config).expand(3, -1, -1),
                         decode=False).slots
    assert stored.dtype == np.float16 and "masks" not in row.column_names
    np.testing.assert_allclose(stored, expected.numpy().astype(np.float16), atol=2e-3)


def test_bad_inputs_name_what_is_wrong(folders, reference, tmp_path):
    missing, not_an_encoder = tmp_path / "missing-encoder", tmp_path / "not-an-encoder"
    with pytest.raises(FileNotFoundError, match="encoder folder .*missing-encoder does not"):
        extract_slots(config_for(folders, tmp_path / "a", encoder=str(missing)))
    not_an_encoder.mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        extract_slots(config_for(folders, tmp_path / "a", encoder=str(not_an_encoder)))
    (tmp_path / "empty" / "videos").mkdir(parents=True)
    with pytest.raises(BadInputError, match="no videos under .*empty"):
        extract_slots(config_for(folders, tmp_path / "a", data=str(tmp_path / "empty")))
    with pytest.raises(BadInputError, match="no videos for split 'test'"):
        extract_slots(config_for(folders, tmp_path / "a", splits=["test"]))
    with pytest.raises(ValueError, match=r"image_size \[16, 16\] does not match the encoder's "
                                         r"\[32, 32\]"):
        extract_slots(config_for(folders, tmp_path / "a", image_size=[16, 16]))
    with pytest.raises(ValueError, match="seed: 3 there, 4 now"):
        extract_slots(config_for(folders, reference, seed=4))
    (tmp_path / "foreign" / "data").mkdir(parents=True)
    (tmp_path / "foreign" / "data" / "train-00000-of-00001.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="holds shards but no extraction.json"):
        extract_slots(config_for(folders, tmp_path / "foreign"))
    with pytest.raises(ValueError, match="videos_per_shard must be >= 1"):
        config_for(folders, tmp_path / "a", videos_per_shard=0)
    assert not (tmp_path / "a").exists()


def test_flags_yaml_and_overrides(tmp_path):
    path = tmp_path / "extract.yaml"
    path.write_text("encoder: from-yaml\nseed: 5\nvideos_per_shard: 10\n")
    config = parse_arguments(["--config", str(path), "--data", "d", "--out", "o",
                              "--image-size", "64", "64", "--store-masks", "--public",
                              "--push-to-hub", "me/slots", "batch_videos=3", "seed=6"])
    assert config == ExtractionConfig(
        encoder="from-yaml", data="d", out="o", seed=6, videos_per_shard=10, image_size=[64, 64],
        store_masks=True, private=False, push_to_hub="me/slots", batch_videos=3)
    with pytest.raises(ValueError, match="missing mandatory value: out"):
        parse_arguments(["--encoder", "e", "--data", "d"])


def test_publishing_without_a_network_keeps_the_output(reference, monkeypatch, capsys):
    before = folder_bytes(reference)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubPublishingError, match="cannot reach the Hugging Face Hub") as error:
        push_slot_folder(reference, "someone/slots")
    assert f"local output at {reference} is intact" in str(error.value)
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubPublishingError, match="offline mode is on"):
        push_slot_folder(reference, "someone/slots")
    assert SECRET not in capsys.readouterr().out + str(error.value)
    assert folder_bytes(reference) == before


def test_command_line_on_finished_output_says_how_to_retry_publishing(folders, reference,
                                                                     monkeypatch, capsys):
    encoder, data = folders
    before = folder_bytes(reference)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    # what HF_ENDPOINT=http://127.0.0.1:9 sets when huggingface_hub is imported
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(SystemExit) as exit_:
        main(["--encoder", str(encoder), "--data", str(data), "--out", str(reference),
              "--frame-stride", "2", "--dtype", "float32", "--store-masks",
              "--push-to-hub", "someone/slots", "chunk_frames=2", "videos_per_shard=2",
              "batch_videos=2", "seed=3"])
    message = str(exit_.value.code)
    assert message.startswith("error: cannot reach the Hugging Face Hub to publish someone/slots")
    assert f"The local output at {reference} is intact" in message
    printed = capsys.readouterr()
    assert "nothing to do" in printed.out
    assert SECRET not in printed.out + printed.err + message
    assert folder_bytes(reference) == before


def test_hub_encoder_records_its_revision(folders, tmp_path, monkeypatch):
    """A Hub id loaded from the Hub cache (offline): the card names the id and the commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repository = tmp_path / "hub" / "models--someone--tiny-smoothsa"
    (repository / "refs").mkdir(parents=True)
    (repository / "refs" / "main").write_text(commit)
    for path in folders[0].iterdir():
        snapshot = repository / "snapshots" / commit / path.name
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_bytes(path.read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "slots"
    extract_slots(config_for(folders, out, encoder="someone/tiny-smoothsa",
                             splits=["validation"], max_videos=1))
    card = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])["slot_dataset"]
    assert card["encoder_id"] == "someone/tiny-smoothsa"
    assert card["encoder"]["revision"] == commit
    with pytest.raises(OSError, match="cannot load the encoder 'someone/absent'"):
        extract_slots(config_for(folders, tmp_path / "b", encoder="someone/absent"))
