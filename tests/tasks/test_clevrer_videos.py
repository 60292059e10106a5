"""The CLEVRER video dataset: frames, masks, splits, caching and bad files."""

import gc
import json

import av
import numpy as np
import pytest
import torch
from einops import rearrange, reduce

import tasks.clevrer
from tasks.bad_input import BadInputError, LoadReport
from tasks.clevrer import VideoLoadingConfig, load_clevrer_videos
from tasks.video_decoding import decode_video, resize_index_maps
from tests.tasks.clevrer_directory import make_clevrer_directory, write_video


def as_torch(videos):
    return videos.with_format(
        "torch", columns=["frames", "masks"], dtype=torch.uint8, output_all_columns=True
    )


def index_map(clevrer, video_index: int, frame_index: int) -> np.ndarray:
    """[H,W] uint8: object_id + 1 where each object is, 0 elsewhere."""
    expected = np.zeros(clevrer.image_size, dtype=np.uint8)
    for item in clevrer.objects[video_index]:
        expected[item.mask(frame_index, clevrer.image_size)] = item.object_id + 1
    return expected


def test_frames_match_what_was_written(clevrer, cache_dir):
    videos = as_torch(load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir))
    assert videos["video_index"] == [0, 1, 2]
    for row in videos:
        expected = rearrange(clevrer.frames(row["video_index"]), "t h w c -> t c h w")
        assert row["frames"].dtype == torch.uint8
        assert row["frames"].shape == (8, 3, 32, 48)
        assert torch.equal(row["frames"], torch.from_numpy(expected))  # lossless codec
        assert row["frame_indices"] == list(range(8))
        assert row["num_source_frames"] == 8
        assert row["video_filename"] == f"video_{row['video_index']:05d}.mp4"


def test_stride_and_resize(clevrer, cache_dir):
    config = VideoLoadingConfig(frame_stride=3, size=(16, 24))
    row = as_torch(load_clevrer_videos(clevrer.root, "train", config, cache_dir))[1]
    written = rearrange(clevrer.frames(1), "t h w c -> t c h w")  # [t,3,32,48]
    assert row["frame_indices"] == [0, 3, 6]
    assert row["frames"].shape == (3, 3, 16, 24)
    # halving each side with area averaging: every output pixel is the mean of a 2x2 block
    blocks = reduce(written[[0, 3, 6]].astype(np.float64), "t c (h a) (w b) -> t c h w",
                    "mean", a=2, b=2)
    assert (row["frames"].double() - torch.from_numpy(blocks)).abs().max() <= 1
    # masks are resized with the nearest neighbour: labels stay labels
    assert torch.equal(row["masks"], torch.from_numpy(resize_index_maps(
        np.stack([index_map(clevrer, 1, frame_index) for frame_index in (0, 3, 6)]), (16, 24)
    )))
    assert set(row["masks"].unique().tolist()) == {0, 1, 2, 3}  # video 1 has 3 objects


def test_yuv420p_video_decodes_within_codec_tolerance(tmp_path, cache_dir):
    clevrer = make_clevrer_directory(tmp_path / "clevrer", {"train": (0,)}, codec="yuv420p")
    row = as_torch(load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir))[0]
    written = torch.from_numpy(rearrange(clevrer.frames(0), "t h w c -> t c h w")).float()
    difference = (row["frames"].float() - written).abs()
    assert difference.mean() < 4  # chroma subsampling blurs colour edges, interiors match
    inside = clevrer.objects[0][0].mask(0, clevrer.image_size)
    inside[:, :] &= np.roll(inside, 2, 0) & np.roll(inside, -2, 0)  # 2 pixels from the edges
    inside &= np.roll(inside, 2, 1) & np.roll(inside, -2, 1)
    assert difference[0][:, torch.from_numpy(inside)].max() <= 12


def test_masks_decode_to_the_annotated_objects(clevrer, cache_dir):
    videos = as_torch(load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir))
    for row in videos:
        objects = clevrer.objects[row["video_index"]]
        assert row["mask_objects"] == [
            {"object_id": item.object_id, "color": item.color, "material": item.material,
             "shape": item.shape}
            for item in objects
        ]
        for frame_index in range(clevrer.num_frames):  # proposals are in shuffled order
            expected = index_map(clevrer, row["video_index"], frame_index)
            assert torch.equal(row["masks"][frame_index], torch.from_numpy(expected))


def test_masks_without_annotations_keep_one_index_per_object(clevrer, cache_dir):
    row = as_torch(load_clevrer_videos(clevrer.root, "test", cache_dir=cache_dir))[0]
    objects = clevrer.objects[15000]
    assert sorted((item["color"], item["object_id"]) for item in row["mask_objects"]) == sorted(
        (item.color, -1) for item in objects
    )
    for item in objects:  # the same object keeps its index in every frame
        index = 1 + [entry["color"] for entry in row["mask_objects"]].index(item.color)
        for frame_index in range(clevrer.num_frames):
            where = torch.from_numpy(item.mask(frame_index, clevrer.image_size))
            assert (row["masks"][frame_index][where] == index).all()


def test_splits_hold_their_own_videos(clevrer, cache_dir):
    for split, indices in clevrer.splits.items():
        videos = load_clevrer_videos(clevrer.root, split, cache_dir=cache_dir)
        assert videos["video_index"] == list(indices)
        assert videos.split == split


def test_without_masks(clevrer, cache_dir):
    config = VideoLoadingConfig(with_masks=False)
    videos = load_clevrer_videos(clevrer.root, "validation", config, cache_dir)
    assert "masks" not in videos.column_names and len(videos) == 2


def test_second_load_reads_the_cache(clevrer, cache_dir, monkeypatch):
    first = load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir)
    decoded = []

    def counting_decode_video(path, *args, **kwargs):
        decoded.append(path)
        return decode_video(path, *args, **kwargs)

    monkeypatch.setattr(tasks.clevrer, "decode_video", counting_decode_video)
    second = load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir)
    assert decoded == []
    assert second["video_index"] == first["video_index"]
    assert second.cache_files[0]["filename"].startswith(str(cache_dir))
    # a changed file makes a new entry: decoded again
    write_video(clevrer.video_path(2), clevrer.frames(2)[:4])
    third = load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir)
    assert len(decoded) == 3
    assert third["num_source_frames"] == [8, 8, 4]


def test_corrupt_mp4_raises_naming_the_file(clevrer, cache_dir):
    clevrer.video_path(1).write_bytes(b"not an mp4" * 100)
    with pytest.raises(BadInputError, match="video_00001.mp4 cannot be decoded"):
        load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir)
    assert not list(cache_dir.glob("clevrer-videos-*"))  # nothing half-written


def test_corrupt_and_missing_mp4_are_skipped_and_counted(clevrer, cache_dir, capsys):
    clevrer.video_path(1).write_bytes(b"not an mp4" * 100)
    clevrer.video_path(10001).unlink()  # its annotation is still there
    report = LoadReport()
    config = VideoLoadingConfig(on_error="skip")
    train = load_clevrer_videos(clevrer.root, "train", config, cache_dir, report)
    validation = load_clevrer_videos(clevrer.root, "validation", config, cache_dir, report)
    assert train["video_index"] == [0, 2]
    assert validation["video_index"] == [10000]
    assert report.counts() == {"video": 2}
    assert [item.location for item in report.skipped] == ["video_00001.mp4", "video_10001.mp4"]
    assert "is missing from" in report.skipped[1].reason
    printed = capsys.readouterr().out
    assert "CLEVRER train videos: skipped 1 video(s)" in printed
    assert "CLEVRER validation videos: skipped 1 video(s)" in printed
    # the cached load reports the same
    again = LoadReport()
    load_clevrer_videos(clevrer.root, "train", config, cache_dir, again)
    assert again.counts() == {"video": 1}


def test_missing_mp4_raises_by_default(clevrer, cache_dir):
    clevrer.video_path(10001).unlink()
    with pytest.raises(BadInputError, match="video_10001.mp4 is missing"):
        load_clevrer_videos(clevrer.root, "validation", cache_dir=cache_dir)


def packet_bytes(path, packet: int) -> tuple[int, int]:
    """(position, size) in the file of its `packet`-th video packet."""
    with av.open(str(path)) as container:
        return [(item.pos, item.size) for item in container.demux(video=0)
                if item.size][packet - 1]


def test_video_shorter_than_its_header_says_is_rejected(clevrer, cache_dir):
    path = clevrer.video_path(0)
    write_video(path, clevrer.frames(0), faststart=True)  # the frame count comes first
    position, size = packet_bytes(path, 4)
    path.write_bytes(path.read_bytes()[: position + size])  # cut after the 4th packet
    with pytest.raises(BadInputError, match="decoded 4 frames, its header declares 8"):
        load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir)


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_a_failed_decoding_leaves_no_decoder_alive(clevrer, cache_dir, damage):
    """A decoder alive when a process forks (datasets' num_proc, DataLoader workers)
    deadlocks the child that frees it: errors must not keep one alive in a cycle."""
    path = clevrer.video_path(0)
    write_video(path, clevrer.frames(0), faststart=True)
    position, size = packet_bytes(path, 5)
    content = path.read_bytes()
    if damage == "truncate":  # decoded 5 of 8 frames
        content = content[: position + size]
    else:  # the decoder fails on packet 5
        content = content[:position] + b"\xff" * size + content[position + size :]
    path.write_bytes(content)
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(BadInputError, match="video_00000.mp4"):
            load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir)
        alive = [item for item in gc.get_objects()
                 if issubclass(type(item), av.container.Container | av.codec.context.CodecContext)]
    finally:
        gc.enable()
    assert alive == []


def test_malformed_proposal_raises_or_is_skipped(clevrer, cache_dir):
    proposal = json.loads(clevrer.proposal_path(2).read_text())
    del proposal["frames"][5]["objects"][0]["color"]
    clevrer.proposal_path(2).write_text(json.dumps(proposal))
    with pytest.raises(BadInputError, match=r"proposal_00002.json frame 5: malformed object"):
        load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir)
    report = LoadReport()
    videos = load_clevrer_videos(
        clevrer.root, "train", VideoLoadingConfig(on_error="skip"), cache_dir, report
    )
    assert videos["video_index"] == [0, 1] and report.num_skipped == 1


def test_ambiguous_annotation_is_rejected(clevrer, cache_dir):
    annotation = json.loads(clevrer.annotation_path(0).read_text())
    annotation["object_property"][1].update(
        {key: annotation["object_property"][0][key] for key in ("color", "material", "shape")}
    )
    clevrer.annotation_path(0).write_text(json.dumps(annotation))
    with pytest.raises(BadInputError, match="same color/material/shape"):
        load_clevrer_videos(clevrer.root, "train", cache_dir=cache_dir)


def test_two_decoding_processes_report_their_skips(clevrer, cache_dir):
    clevrer.video_path(1).write_bytes(b"not an mp4" * 100)
    report = LoadReport()
    config = VideoLoadingConfig(num_proc=2, on_error="skip")
    videos = load_clevrer_videos(clevrer.root, "train", config, cache_dir, report)
    assert videos["video_index"] == [0, 2]
    assert report.counts() == {"video": 1}


def test_config_validation():
    assert VideoLoadingConfig(size=[16, 24]).size == (16, 24)  # e.g. a list from YAML
    with pytest.raises(ValueError, match="frame_stride"):
        VideoLoadingConfig(frame_stride=0)
    with pytest.raises(ValueError, match="on_error"):
        VideoLoadingConfig(on_error="ignore")
