"""Every shipped encoder config loads and builds its model (weights are not downloaded)."""

from pathlib import Path

import pytest
import torch

from ocl.config_loading import load_config
from ocl.configuration import SmoothSAConfig
from ocl.modeling import SmoothSAModel
from ocl.training_config import EncoderTrainingConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "ocl").glob("*.yaml"))


def test_there_are_shipped_configs():
    assert {path.stem for path in CONFIGS} >= {"clevrer_sim_small", "dinov2_images",
                                                "dinov2_videos"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_builds_a_model_that_runs(path):
    config = load_config(EncoderTrainingConfig, path)
    model = SmoothSAModel(SmoothSAConfig(**config.model)).eval()
    assert tuple(config.data.image_size) == tuple(model.config.image_size)
    frames = 2 if model.config.is_video else 1
    with torch.no_grad():
        output = model(torch.rand(1, frames, 3, *config.data.image_size), decode=False)
    assert output.slots.shape == (1, frames, model.config.num_slots, model.config.slot_dim)
