"""Our encoder is SmoothSA: official checkpoints reproduce the official implementation's outputs.

The fixtures were made by running the official code in eval mode with perturbed parameters; each
`NAME.official.safetensors` (an official state dict) comes with `NAME.io.safetensors` (inputs,
preheater noise, outputs) and `NAME.json` (sizes). Nothing about the sizes is assumed here.
"""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ocl.official_checkpoint import (
    CheckpointMismatchError,
    load_official_checkpoint,
    read_official_state_dict,
)

REPOSITORY = Path(__file__).resolve().parents[2]
FIXTURES = Path(
    os.environ.get("SMOOTHSA_FIXTURES", REPOSITORY / "../shared/fixtures/smoothsa_official")
)
# official output name -> SmoothSAOutput field
OUTPUTS = {
    "feature": "features",
    "qinit": "initial_queries",
    "slotz": "slots",
    "attenta": "attention",
    "recon": "reconstruction",
    "attentd": "decoder_attention",
}


def fixture_names() -> list[str]:
    return sorted(p.name.removesuffix(".official.safetensors")
                  for p in FIXTURES.glob("*.official.safetensors"))


def test_the_official_fixtures_are_there():
    assert fixture_names(), (
        f"no *.official.safetensors fixtures in {FIXTURES.resolve()}: set SMOOTHSA_FIXTURES"
    )


def load_fixture_model(name: str):
    """The imported model, its io tensors and its sizes."""
    sizes = json.loads((FIXTURES / f"{name}.json").read_text())
    fields = dict(
        num_iterations=sizes["sa_iters_first"],
        preheater_heads=sizes["preheat_heads"],
        decoder_heads=sizes["decoder_heads"],
    )
    if sizes["video"]:
        fields.update(
            num_iterations_later=sizes["sa_iters_rest"], transit_heads=sizes["transit_heads"]
        )
    if "backbone_heads" in sizes:
        fields.update(
            backbone_heads=sizes["backbone_heads"],
            image_size=(sizes["input_size"], sizes["input_size"]),
            resize_factor=sizes["resize_factor"],
        )
    model = load_official_checkpoint(
        FIXTURES / f"{name}.official.safetensors", num_slots=sizes["num_slots"], **fields
    )
    return model, load_file(FIXTURES / f"{name}.io.safetensors"), sizes


@pytest.mark.parametrize("name", fixture_names())
def test_official_outputs_are_reproduced(name):
    model, io, sizes = load_fixture_model(name)
    inputs = io["input"]
    if model.config.backbone == "dinov2":
        # The official pipeline normalises pixels before the model; ours takes [0,1] pixels.
        mean = torch.tensor(model.config.pixel_mean)[:, None, None]
        std = torch.tensor(model.config.pixel_std)[:, None, None]
        inputs = inputs * std + mean
    with torch.no_grad():
        output = model(inputs, noise=io["noise"])
    compared = [key for key in OUTPUTS if key in io]
    assert {"qinit", "slotz", "attenta", "recon", "attentd"} <= set(compared)
    for key in compared:
        ours = getattr(output, OUTPUTS[key])
        assert ours.shape == io[key].shape, key
        torch.testing.assert_close(ours, io[key], atol=1e-4, rtol=0, msg=f"{name}: {key}")
    assert output.slots.shape[-2:] == (sizes["num_slots"], sizes["slot_dim"])


def test_missing_and_unexpected_keys_are_listed():
    name = fixture_names()[0]
    sizes = json.loads((FIXTURES / f"{name}.json").read_text())
    state_dict = read_official_state_dict(FIXTURES / f"{name}.official.safetensors")
    del state_dict["aggregat.proj_k.weight"]
    with pytest.raises(CheckpointMismatchError, match=r"missing keys: \['slot_attention.to_k"):
        load_official_checkpoint(state_dict, num_slots=sizes["num_slots"])
    state_dict = read_official_state_dict(FIXTURES / f"{name}.official.safetensors")
    state_dict["aggregat.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match=r"aggregat\.extra\.weight"):
        load_official_checkpoint(state_dict, num_slots=sizes["num_slots"])


def test_misshapen_tensor_is_named():
    name = fixture_names()[0]
    sizes = json.loads((FIXTURES / f"{name}.json").read_text())
    state_dict = read_official_state_dict(FIXTURES / f"{name}.official.safetensors")
    state_dict["aggregat.proj_q.weight"] = state_dict["aggregat.proj_q.weight"][:, :-1]
    with pytest.raises(CheckpointMismatchError, match="slot_attention.to_q.weight"):
        load_official_checkpoint(state_dict, num_slots=sizes["num_slots"])


def test_pth_checkpoint_with_prefix_loads(tmp_path):
    name = fixture_names()[0]
    sizes = json.loads((FIXTURES / f"{name}.json").read_text())
    raw = load_file(FIXTURES / f"{name}.official.safetensors")
    assert all(key.startswith("m.") for key in raw)
    torch.save(raw, tmp_path / "model.pth")
    from_pth = load_official_checkpoint(tmp_path / "model.pth", num_slots=sizes["num_slots"])
    from_safetensors = load_official_checkpoint(raw, num_slots=sizes["num_slots"])
    for key, value in from_safetensors.state_dict().items():
        assert torch.equal(value, from_pth.state_dict()[key]), key


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_official_checkpoint(tmp_path / "nothing.pth", num_slots=4)


def test_not_a_checkpoint(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointMismatchError, match="state dict"):
        load_official_checkpoint(tmp_path / "list.pth", num_slots=4)
