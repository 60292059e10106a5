"""Runs: same seed → identical bytes for any worker count, resuming, bad input, the CLI."""

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from tasks.clevrer_sim.__main__ import main
from tasks.clevrer_sim.config import SimConfig, parse_size
from tasks.clevrer_sim.dataset import generate_dataset
from tasks.clevrer_sim.layout import SPLITS, Layout

from .conftest import SMALL


def _digests(root):
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_identical_bytes_with_two_workers(small_dataset, tmp_path):
    root, _ = small_dataset
    summary = generate_dataset(SMALL, tmp_path, workers=2, progress=False)
    assert summary.generated == SMALL.num_videos
    assert _digests(tmp_path) == _digests(root)


def test_question_files_do_not_depend_on_the_string_hash_seed(small_dataset, tmp_path):
    root, _ = small_dataset
    assemble = (
        "import sys; from pathlib import Path; from tasks.clevrer_sim.config import SimConfig; "
        "from tasks.clevrer_sim.dataset import assemble_questions; "
        "from tasks.clevrer_sim.layout import SPLITS, Layout; "
        f"assemble_questions(SimConfig.from_dict({SMALL.to_dict()!r}), Layout(Path(sys.argv[1])))"
    )
    written = []
    for hash_seed in ("1", "2", "3"):
        copy = tmp_path / hash_seed
        shutil.copytree(root, copy)
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", assemble, str(copy)], check=True, env=environment)
        written.append({split: Layout(copy).questions(split).read_bytes() for split in SPLITS})
    assert written[0] == written[1] == written[2]
    assert written[0] == {split: Layout(root).questions(split).read_bytes() for split in SPLITS}


def test_another_seed_gives_other_videos(small_dataset, tmp_path):
    root, _ = small_dataset
    other = dataclasses.replace(SMALL, num_videos=1, seed=1)
    generate_dataset(other, tmp_path, progress=False)
    name = "videos/train/video_00000-01000/video_00000.mp4"
    assert (tmp_path / name).read_bytes() != (root / name).read_bytes()


def test_resume_skips_finished_videos(small_dataset, tmp_path):
    root, _ = small_dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    layout = Layout(copy)
    layout.video("validation", 4).unlink()
    layout.question_pool(1).unlink()
    for split in ("train", "validation", "test"):
        layout.questions(split).unlink()
    interrupted = layout.proposal(4).with_name(".proposal_00004.json.123.tmp")
    interrupted.write_text('{"video_index": 4, "fra')
    untouched = layout.annotation("train", 0)
    before = untouched.stat().st_mtime_ns
    summary = generate_dataset(SMALL, copy, workers=1, progress=False)
    assert summary.generated == 2
    assert untouched.stat().st_mtime_ns == before
    assert _digests(copy) == _digests(root)


def test_resume_with_another_config_is_refused(small_dataset, tmp_path):
    root, _ = small_dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    with pytest.raises(ValueError, match=r"another config .*num_frames"):
        generate_dataset(dataclasses.replace(SMALL, num_frames=41), copy, progress=False)


def test_a_dataset_from_before_pixel_formats_resumes_as_yuv420p(small_dataset, tmp_path):
    root, _ = small_dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    manifest_path = Layout(copy).manifest()
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"]["pixel_format"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"another config .*pixel_format"):
        generate_dataset(SMALL, copy, progress=False)
    older = dataclasses.replace(SMALL, pixel_format="yuv420p")
    assert generate_dataset(older, copy, progress=False).generated == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_videos": 0}, "num_videos must be at least 1"),
        ({"width": 63}, "width must be an even number"),
        ({"num_frames": 3}, "num_frames must be at least 8"),
        ({"min_objects": 5, "max_objects": 4}, "min_objects=5, max_objects=4"),
        ({"pixel_format": "rgb24"}, "pixel_format must be one of"),
    ],
)
def test_bad_config_names_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        SimConfig(**{"num_videos": 1, **fields})


def test_parse_size():
    assert parse_size("64") == (64, 64)
    assert parse_size("96x64") == (96, 64)
    for bad in ("", "64x", "big", "1x2x3"):
        with pytest.raises(ValueError, match="size must be N or WxH"):
            parse_size(bad)


def test_cli_reports_bad_input(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--videos", "0"]) == 2
    assert "num_videos must be at least 1" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--videos", "2", "--size", "64x65"]) == 2
    assert "height must be an even number" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["--out", str(blocker / "sub"), "--videos", "2"]) == 2
    assert "is not writable" in capsys.readouterr().err
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["--out", str(locked), "--videos", "2"]) == 2
        assert "is not writable" in capsys.readouterr().err


def test_cli_generates_checks_and_prints_balance(tmp_path, capsys):
    arguments = ["--out", str(tmp_path), "--videos", "2", "--frames", "24", "--future-frames", "8"]
    assert main(arguments + ["--workers", "1", "--check", "--quiet", "--size", "48x32"]) == 0
    output = capsys.readouterr().out
    assert "2 videos generated" in output
    assert "descriptive/count" in output
    assert "checker:" in output and " 0 disagreements" in output
    frames = Layout(tmp_path).video("train", 0)
    assert frames.exists()
