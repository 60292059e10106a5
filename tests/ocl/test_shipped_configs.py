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


MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("folder", ["clevrer_sim_small", "clevrer_sim_small_contrast",
                                    "clevrer_sim_small_gpu", "clevrer_sim_small_gpu_clips4",
                                    "clevrer_sim_small_entropy",
                                    "clevrer_sim_small_entropy_clips8"])
def test_the_shipped_small_encoders_are_the_small_config_and_encode_a_video(folder):
    from downstream.slot_encoding import load_frozen_encoder

    encoder, identity = load_frozen_encoder(str(MODELS / folder))
    config = load_config(EncoderTrainingConfig, CONFIGS[0].with_name("clevrer_sim_small.yaml"))
    for name, value in config.model.items():
        shipped = getattr(encoder.config, name)
        assert (list(shipped) if isinstance(shipped, tuple) else shipped) == value, name
    assert identity.encoder_id == folder
    assert not any(parameter.requires_grad for parameter in encoder.parameters())
    video = torch.rand(1, 4, 3, *encoder.config.image_size, generator=torch.manual_seed(0))
    first = encoder(video, generator=torch.Generator().manual_seed(0), decode=False).slots
    again = encoder(video, generator=torch.Generator().manual_seed(0), decode=False).slots
    assert first.shape == (1, 4, 7, 64) and torch.isfinite(first).all()
    torch.testing.assert_close(first, again)


@pytest.mark.parametrize("base, trained", [
    ("clevrer_sim_small", "clevrer_sim_small_contrast"),
    ("clevrer_sim_small_gpu", "clevrer_sim_small_gpu_clips4"),
    ("clevrer_sim_small_gpu_clips4", "clevrer_sim_small_entropy"),
    ("clevrer_sim_small_entropy", "clevrer_sim_small_entropy_clips8"),
])
def test_each_later_encoder_is_trained_not_copied(base, trained):
    from safetensors.torch import load_file

    first = load_file(MODELS / base / "model.safetensors")
    second = load_file(MODELS / trained / "model.safetensors")
    assert first.keys() == second.keys()
    changed = [key for key in first if not torch.equal(first[key], second[key])]
    assert len(changed) > len(first) // 2
