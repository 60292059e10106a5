"""The built-in default run: no arguments read the main job's config, which makes its data
(CLEVRER-sim, then slots by the small encoder) once, then trains; tested here end to end at tiny
sizes, with a tiny untrained encoder standing in for the shipped one."""

import json
from dataclasses import replace

import pytest
import torch

from downstream.extraction_plan import source_identity
from downstream.submission import validate_submission
from downstream.vqa import DEFAULT_CONFIG, VqaConfig, parse_arguments, run_vqa
from downstream.vqa_default import MissingPieceError, prepare_default_data
from ocl.config_loading import load_config
from ocl.modeling import SmoothSAModel
from tests.ocl.tiny import tiny_config as tiny_encoder_config


def test_no_arguments_run_the_main_job(tmp_path):
    config, _ = parse_arguments([])
    assert config == load_config(VqaConfig, DEFAULT_CONFIG) and config.prepare.enabled
    prepare = replace(config.prepare, cache_dir=str(tmp_path / "cache"),
                      encoder=str(tmp_path / "nowhere"))
    with pytest.raises(MissingPieceError, match=f"small SmoothSA encoder in {tmp_path}/nowhere"):
        prepare_default_data(prepare, accelerator=None)
    assert not (tmp_path / "cache").exists()


def test_the_default_pipeline_makes_its_data_once_and_trains(tmp_path, capsys):
    torch.manual_seed(0)
    SmoothSAModel(tiny_encoder_config()).save_pretrained(tmp_path / "encoder")
    overrides = [
        f"prepare.cache_dir={tmp_path / 'cache'}", f"prepare.encoder={tmp_path / 'encoder'}",
        "prepare.videos=12", "prepare.frames=32", "prepare.frame_stride=4",
        f"training.output_dir={tmp_path / 'run'}", "training.max_steps=3",
        "training.batch_size=4", "training.checkpoint_every=0", "training.evaluate_every=0",
        "training.tracker=none", f"data.cache_dir={tmp_path / 'cache' / 'datasets'}",
        "model.hidden_size=16", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=16",
    ]
    metrics = run_vqa(load_config(VqaConfig, DEFAULT_CONFIG, overrides))
    assert "descriptive/accuracy" in metrics
    folders = sorted(path.name for path in (tmp_path / "cache").iterdir())
    sim_name = folders[0].removeprefix("clevrer-sim-")
    assert sim_name.startswith("12v-32f-64px-")  # and a fingerprint of every generator setting
    weights = source_identity(str(tmp_path / "encoder"))["weights_sha256"][:8]
    assert folders == [f"clevrer-sim-{sim_name}", "datasets",
                       f"slots-{sim_name}-stride4-encoder-{weights}"]
    scenes = json.loads((tmp_path / "cache" / folders[0] / "questions" / "test.json").read_text())
    validate_submission(json.loads((tmp_path / "run" / "submission.json").read_text()), scenes)
    capsys.readouterr()
    run_vqa(load_config(VqaConfig, DEFAULT_CONFIG, [*overrides, "training.max_steps=4"]))
    assert "nothing to do" in capsys.readouterr().out  # the extraction was reused
    torch.manual_seed(1)  # a new encoder in the same folder gets slots of its own
    SmoothSAModel(tiny_encoder_config()).save_pretrained(tmp_path / "encoder")
    run_vqa(load_config(VqaConfig, DEFAULT_CONFIG,
                        [*overrides, f"training.output_dir={tmp_path / 'run2'}"]))
    assert len(list((tmp_path / "cache").glob(f"slots-{sim_name}-stride4-encoder-*"))) == 2
