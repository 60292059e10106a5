"""The files of a generated set: official layout, schema, masks, video, question wording."""

import json
import re
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pybullet
import pytest
import torch

from ocl.metrics.fg_ari_repairs import on_outline
from tasks.clevrer_sim.camera import Camera
from tasks.clevrer_sim.config import PIXEL_FORMATS
from tasks.clevrer_sim.dataset import camera_for, simulate_video, splits_present
from tasks.clevrer_sim.layout import OFFICIAL_SPLITS, Layout, folder_name, split_ranges
from tasks.clevrer_sim.render import NO_OBJECT, Renderer, render_video
from tasks.clevrer_sim.scene import HALF_HEIGHT, ObjectState, Scene
from tasks.clevrer_sim.schema import validate_annotation, validate_proposal, validate_questions
from tasks.clevrer_sim.vocabulary import QUESTION_WORDS
from tasks.clevrer_sim.writer import decode_mask, read_video, write_video

from .conftest import SMALL

REAL_EXPLANATORY = Path(__file__).parents[3] / "shared" / "fixtures" / "clevrer_real"


def _real_fixture() -> list:
    return json.loads((REAL_EXPLANATORY / "explanatory_questions_sample.json").read_text())


def test_split_ranges_follow_the_official_proportions():
    assert split_ranges(20_000) == OFFICIAL_SPLITS
    assert split_ranges(6) == {"train": range(0, 3), "validation": range(3, 5), "test": range(5, 6)}
    assert split_ranges(1) == {"train": range(0, 1), "validation": range(1, 1), "test": range(1, 1)}
    assert folder_name("video", 0) == "video_00000-01000"
    assert folder_name("annotation", 15_999) == "annotation_15000-16000"


def test_files_are_where_the_official_layout_puts_them(small_dataset):
    root, _ = small_dataset
    expected = {
        "videos/train/video_00000-01000/video_00000.mp4",
        "videos/validation/video_00000-01000/video_00003.mp4",
        "videos/test/video_00000-01000/video_00005.mp4",
        "annotations/train/annotation_00000-01000/annotation_00002.json",
        "annotations/validation/annotation_00000-01000/annotation_00004.json",
        "derender_proposals/proposal_00005.json",
        "questions/train.json",
        "questions/validation.json",
        "questions/test.json",
    }
    present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert expected <= present
    assert len([p for p in present if p.startswith("videos/")]) == SMALL.num_videos
    assert not [p for p in present if ".tmp" in p]
    manifest = json.loads(Layout(root).manifest().read_text())
    assert manifest["splits"] == {"train": [0, 3], "validation": [3, 5], "test": [5, 6]}
    assert splits_present(root) == split_ranges(SMALL.num_videos)


def test_every_file_validates_against_the_schema(small_dataset):
    root, _ = small_dataset
    layout = Layout(root)
    for split, indices in split_ranges(SMALL.num_videos).items():
        for index in indices:
            annotation = json.loads(layout.annotation(split, index).read_text())
            assert validate_annotation(annotation) == []
            assert len(annotation["motion_trajectory"]) == SMALL.num_frames
            assert annotation["video_filename"] == f"video_{index:05d}.mp4"
            assert 3 <= len(annotation["object_property"]) <= 6
            proposal = json.loads(layout.proposal(index).read_text())
            assert validate_proposal(proposal) == []
            assert len(proposal["frames"]) == SMALL.num_frames
        questions = json.loads(layout.questions(split).read_text())
        assert validate_questions(questions, with_answers=split != "test") == []
        assert [s["scene_index"] for s in questions] == list(indices)
        for scene in questions:
            assert [q["question_id"] for q in scene["questions"]] == list(
                range(len(scene["questions"]))
            )
    test_file = layout.questions("test").read_text()
    assert '"answer"' not in test_file


def test_validators_accept_real_clevrer_and_name_bad_fields():
    assert validate_questions(_real_fixture()) == []
    bad = _real_fixture()[:1]
    bad[0]["questions"][0]["choices"][0]["answer"] = "maybe"
    del bad[0]["questions"][0]["program"]
    problems = validate_questions(bad)
    assert any("missing keys ['program']" in p for p in problems)
    broken = {"scene_index": 1, "video_filename": "v.mp4", "object_property": [], "collision": []}
    assert any("missing keys ['motion_trajectory']" in p for p in validate_annotation(broken))


def test_masks_decode_to_the_rendered_instance_pixels(small_dataset):
    root, _ = small_dataset
    layout = Layout(root)
    index = 4
    video = simulate_video(SMALL, index)
    frames, masks = render_video(camera_for(SMALL), video.scene, video.trajectory, SMALL.num_frames)
    proposal = json.loads(layout.proposal(index).read_text())
    attributes = {(o.color, o.material, o.shape): o.object_id for o in video.scene.objects}
    for frame_index, frame in enumerate(proposal["frames"]):
        rebuilt = np.full(masks[frame_index].shape, NO_OBJECT)
        for obj in frame["objects"]:
            decoded = decode_mask(obj["mask"]).astype(bool)
            assert obj["mask"]["size"] == [SMALL.height, SMALL.width]
            assert decoded.any() and not (rebuilt[decoded] != NO_OBJECT).any()
            rebuilt[decoded] = attributes[obj["color"], obj["material"], obj["shape"]]
        np.testing.assert_array_equal(rebuilt, masks[frame_index])
    # Objects are big enough to recognise: a typical visible object covers 1.5–4 % of the image.
    visible = [np.mean(masks == o.object_id, axis=(1, 2)) for o in video.scene.objects]
    medians = [float(np.median(v[v > 0])) for v in visible if (v > 0).any()]
    assert 0.01 < float(np.median(medians)) < 0.05
    # The mp4 decodes to the rendered frames up to compression.
    decoded_video = read_video(layout.video("validation", index))
    assert decoded_video.shape == (SMALL.num_frames, SMALL.height, SMALL.width, 3)
    assert np.abs(decoded_video.astype(int) - frames.astype(int)).mean() < 4.0


def test_full_chroma_videos_keep_the_objects_outlines(tmp_path):
    video = simulate_video(SMALL, 4)
    frames, masks = render_video(camera_for(SMALL), video.scene, video.trajectory, 16)
    outline = on_outline(torch.from_numpy(masks)).numpy() & (masks != NO_OBJECT)
    error = {}
    for pixel_format in PIXEL_FORMATS:
        path = tmp_path / f"{pixel_format}.mp4"
        write_video(path, frames, SMALL.fps, pixel_format)
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.pix_fmt == pixel_format
        decoded = read_video(path).astype(int)
        error[pixel_format] = np.abs(decoded - frames.astype(int)).mean(-1)[outline].mean()
    assert SMALL.pixel_format == "yuv444p"
    # 4:2:0 stores colour per 2x2 block: an object's colour bleeds over its outline.
    assert error["yuv444p"] < 3.0 < 2 * error["yuv444p"] < error["yuv420p"]


def test_a_narrower_field_of_view_draws_objects_larger():
    def median_object_share(config):
        video = simulate_video(config, 4)
        _, masks = render_video(camera_for(config), video.scene, video.trajectory, 8)
        shares = [np.mean(masks == o.object_id, axis=(1, 2)) for o in video.scene.objects]
        return float(np.median([np.median(s[s > 0]) for s in shares if (s > 0).any()]))

    zoomed = replace(SMALL, field_of_view=28.0)
    assert camera_for(zoomed).fov_degrees == 28.0
    assert median_object_share(zoomed) > 1.3 * median_object_share(SMALL)
    with pytest.raises(ValueError, match="field_of_view must be in"):
        replace(SMALL, field_of_view=5.0)


def test_metal_and_rubber_look_different():
    camera = Camera(SMALL.width, SMALL.height)
    objects, positions = [], []
    for row, (color, shape) in enumerate(
        (("red", "cube"), ("blue", "sphere"), ("green", "cylinder"))
    ):
        for column, material in enumerate(("metal", "rubber")):
            object_id = len(objects)
            spot = camera.floor_point(20 + 24 * column, 16 + 16 * row, HALF_HEIGHT[shape])
            objects.append(
                ObjectState(object_id, color, material, shape, tuple(spot[:2]), 0.4, (0, 0))
            )
            positions.append(spot)
    with Renderer(camera, Scene(tuple(objects))) as renderer:
        quaternions = np.tile(pybullet.getQuaternionFromEuler((0, 0, 0.4)), (len(objects), 1))
        frame, mask = renderer.render(np.array(positions), quaternions)
    for metal, rubber in zip(objects[::2], objects[1::2], strict=True):
        spreads = []
        for state in (metal, rubber):
            brightness = frame[mask == state.object_id].astype(float).max(axis=1)
            assert len(brightness) > 40
            spreads.append(np.percentile(brightness, 95) - np.percentile(brightness, 25))
        # Metal shows bright reflection bands over its colour; rubber is evenly shaded.
        assert spreads[0] > spreads[1] + 40, (metal.color, metal.shape, spreads)


def test_questions_use_clevrer_words_and_all_types(small_dataset):
    root, _ = small_dataset
    types = set()
    for split in ("train", "validation", "test"):
        for scene in json.loads(Layout(root).questions(split).read_text()):
            for question in scene["questions"]:
                types.add(question["question_type"])
                texts = [question["question"]] + [c["choice"] for c in question.get("choices", [])]
                for text in texts:
                    words = set(text.lower().rstrip("?").split())
                    assert words <= QUESTION_WORDS, (text, words - QUESTION_WORDS)
    assert types == {"descriptive", "explanatory", "predictive", "counterfactual"}


EXPLANATORY_QUESTION = re.compile(
    r"Which of the following is (not )?responsible for (the collision between the [a-z ]+ and the "
    r"[a-z ]+|the [a-z ]+'s colliding with the [a-z ]+|the [a-z ]+'s (exit|exiting the scene))\?"
)
EXPLANATORY_CHOICE = re.compile(
    r"the presence of the [a-z ]+|the [a-z ]+'s (entrance|entering the scene)"
    r"|the collision between the [a-z ]+ and the [a-z ]+|the [a-z ]+'s colliding with the [a-z ]+"
)


def _explanatory_shape_problems(question):
    problems = []
    if not EXPLANATORY_QUESTION.fullmatch(question["question"]):
        problems.append(question["question"])
    program = question["program"]
    tail = ["filter_ancestor", "belong_to"] + (
        ["negate"] if " not " in question["question"] else []
    )
    if program[:2] != ["events", "events"] or program[-len(tail) :] != tail:
        problems.append(" ".join(program))
    for choice in question["choices"]:
        if not EXPLANATORY_CHOICE.fullmatch(choice["choice"]):
            problems.append(choice["choice"])
        first = choice["program"][0]
        if choice["choice"].startswith("the presence"):
            ok = first == "objects" and choice["program"][-1] == "unique"
        else:
            ok = first == "events" and choice["program"][-1] == "unique"
        if not ok:
            problems.append(" ".join(choice["program"]))
    return problems


def test_explanatory_questions_look_like_the_real_ones(small_dataset):
    root, _ = small_dataset
    real = [q for scene in _real_fixture() for q in scene["questions"]]
    assert all(_explanatory_shape_problems(q) == [] for q in real)
    ours = [
        q
        for split in ("train", "validation")
        for scene in json.loads(Layout(root).questions(split).read_text())
        for q in scene["questions"]
        if q["question_type"] == "explanatory"
    ]
    assert ours
    for question in ours:
        assert _explanatory_shape_problems(question) == []
