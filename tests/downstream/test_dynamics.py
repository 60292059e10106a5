"""The slot world model: rollouts, windows, removal, baselines, training, rollout datasets and the
per-horizon evaluation, on tiny models and synthetic or tiny CLEVRER-layout data."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from downstream.dynamics import DynamicsConfig, DynamicsTask, main, mask_cross_entropy
from downstream.dynamics_baselines import LeastSquaresDynamics, constant_velocity, copy_last
from downstream.dynamics_evaluation import (
    HorizonMetrics,
    OverlapByMotion,
    evaluate_rollouts,
    horizon_table,
    object_motion,
    panel_title,
)
from downstream.head_training import load_initial_weights
from downstream.rollout_dataset import slot_of_object
from downstream.slot_encoding import load_frozen_encoder
from downstream.slot_windows import SlotWindows, load_videos_for_slots
from downstream.world_model import WorldModel, WorldModelConfig
from ocl.config_loading import load_config
from ocl.metrics import adjusted_rand_index
from ocl.modeling import SmoothSAModel
from tasks.bad_input import BadInputError
from tasks.clevrer import VideoLoadingConfig, load_clevrer_videos
from tasks.slots import (
    SlotProvenance,
    SlotShardWriter,
    SlotSpec,
    load_slots,
    slot_dataset_card,
    slot_provenance,
    slot_spec,
)
from tests.ocl.tiny import tiny_config
from tests.tasks.clevrer_directory import make_clevrer_directory

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "dynamics"
TINY = str(CONFIGS / "tiny.yaml")
PROVENANCE = SlotProvenance("synthetic", "none", 1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not fight over shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_world_model(slot_dim: int = 8, window: int = 3, **fields) -> WorldModel:
    torch.manual_seed(0)
    config = WorldModelConfig(slot_dim=slot_dim, hidden_dim=16, num_layers=2, num_heads=2,
                              feedforward_dim=32, window=window, **fields)
    return WorldModel(config).eval()


def linear_motion(seed: int, num_videos: int, num_frames: int = 12) -> np.ndarray:
    """[v,t,3,4] slots moving on straight lines at constant speeds."""
    generator = np.random.default_rng(seed)
    start = generator.standard_normal((num_videos, 1, 3, 4))
    velocity = 0.3 * generator.standard_normal((num_videos, 1, 3, 4))
    return start + velocity * np.arange(num_frames)[None, :, None, None]


def write_slots(folder: Path, splits: dict, masks: dict | None = None,
                provenance: SlotProvenance = PROVENANCE) -> Path:
    """A slot dataset folder with one split per entry of `splits` (videos of [t,n,d] slots;
    `masks` the same videos' [t,n,h,w]); validation videos are numbered from 10000."""
    _, num_slots, slot_dim = next(iter(splits.values()))[0].shape
    mask_size = None if masks is None else next(iter(masks.values()))[0].shape[-2:]
    spec = SlotSpec(num_slots, slot_dim, "float32", mask_size)
    for split, slots in splits.items():
        with SlotShardWriter(folder, spec, provenance, split) as writer:
            for video, video_slots in enumerate(slots):
                writer.write(video + (10000 if split == "validation" else 0), video_slots,
                             None if masks is None else masks[split][video])
    (folder / "README.md").write_text(slot_dataset_card(spec, provenance, tuple(splits)))
    return folder


def test_rollout_shapes_determinism_and_no_teacher_forcing(tmp_path):
    model = tiny_world_model()
    burn_in = torch.randn(2, 5, 4, 8)
    rolled = model(burn_in, steps=6).slots
    assert rolled.shape == (2, 6, 4, 8)
    assert torch.equal(model.rollout(burn_in, 6), rolled)
    assert torch.equal(model.rollout(burn_in[:, -3:], 6), rolled)  # only the last window counts
    model.save_pretrained(tmp_path / "model")
    assert torch.equal(WorldModel.from_pretrained(tmp_path / "model").eval().rollout(burn_in, 6),
                       rolled)
    frames = burn_in
    for k in range(6):  # each step sees the last window of observed + predicted frames
        next_slots = model.predict_next(frames[:, -3:])
        torch.testing.assert_close(rolled[:, k], next_slots)
        frames = torch.cat([frames, next_slots[:, None]], dim=1)
    order = torch.tensor([2, 0, 3, 1])  # no slot-index embedding: slots are a set
    torch.testing.assert_close(model.rollout(burn_in[:, :, order], 6), rolled[:, :, order])
    with pytest.raises(ValueError, match=r"burn-in slots must be \[b,t>=1,n,8\]"):
        model.rollout(torch.randn(2, 5, 4, 7), 2)


def test_zero_output_starts_a_residual_model_at_copy_last():
    burn_in = torch.randn(2, 5, 4, 8)
    model = tiny_world_model(zero_output=True)
    torch.testing.assert_close(model.rollout(burn_in, 4), copy_last(burn_in, 4))
    assert model.transformer.layers[0].linear1.weight.abs().sum() > 0  # only the output is zero
    with pytest.raises(ValueError, match="zero_output .* needs residual"):
        WorldModelConfig(slot_dim=8, residual=False, zero_output=True)


def test_a_second_order_model_that_predicts_no_change_of_velocity_is_constant_velocity():
    model = tiny_world_model(second_order=True, zero_output=True)
    burn_in = torch.randn(2, 5, 4, 8)
    torch.testing.assert_close(model.rollout(burn_in, 6), constant_velocity(burn_in, 6))
    one_frame = burn_in[:, :1]  # no velocity yet: the slots stay where they are
    torch.testing.assert_close(model.rollout(one_frame, 3), copy_last(one_frame, 3))
    with torch.no_grad():
        model.project_out.bias.fill_(0.5)  # its output changes the velocity, step after step
    rolled = model.rollout(burn_in, 3)
    velocity = burn_in[:, -1] - burn_in[:, -2]
    torch.testing.assert_close(rolled[:, 0], burn_in[:, -1] + velocity + 0.5)
    torch.testing.assert_close(rolled[:, 1], rolled[:, 0] + velocity + 1.0)
    with pytest.raises(ValueError, match="second_order .* needs residual"):
        WorldModelConfig(slot_dim=8, residual=False, second_order=True)


def test_the_step_gate_starts_open_and_closed_holds_a_slot_where_it_was():
    burn_in = torch.randn(2, 5, 4, 8)
    gated = tiny_world_model(second_order=True, zero_output=True, step_gate=True)
    torch.testing.assert_close(gated.rollout(burn_in, 4), constant_velocity(burn_in, 4))
    with torch.no_grad():
        gated.project_out.bias.fill_(0.5)
        gated.project_gate.bias.fill_(-0.75)  # every gate 0.25: a quarter of each step
    velocity = burn_in[:, -1] - burn_in[:, -2]
    torch.testing.assert_close(gated.rollout(burn_in, 1)[:, 0],
                               burn_in[:, -1] + 0.25 * (velocity + 0.5))
    with torch.no_grad():  # the gate closes for the slots whose hidden state says so
        gated.project_gate.weight.normal_(std=0.3)
        gated.project_gate.bias.fill_(0.0)
    rolled = gated.rollout(burn_in, 1)[:, 0]
    hidden = gated.transformer(rearrange(
        gated.project_in(burn_in[:, -3:]) + gated.time_embedding[:, None], "b t n c -> b (t n) c"))
    gate = (1 + gated.project_gate(hidden[:, -4:])).clamp(0, 1)  # the last frame's slots
    closed = gate[..., 0] == 0
    assert closed.any() and (~closed).any()
    torch.testing.assert_close(rolled[closed], burn_in[:, -1][closed])
    torch.testing.assert_close(rolled, burn_in[:, -1] + gate * (velocity + 0.5))
    with pytest.raises(ValueError, match="step_gate .* needs residual"):
        WorldModelConfig(slot_dim=8, residual=False, step_gate=True)


def test_a_gated_run_starts_from_an_ungated_model_unchanged(tmp_path):
    """`training.initial_weights` (or `from_pretrained`) of a model without the gate fit the
    same model with it: the gate starts open, so the rollouts are the same; any other missing
    weight is refused."""
    ungated = tiny_world_model(second_order=True)
    ungated.save_pretrained(tmp_path / "ungated")
    gated = tiny_world_model(second_order=True, step_gate=True, zero_output=True)
    load_initial_weights(gated, str(tmp_path / "ungated"))
    burn_in = torch.randn(2, 5, 4, 8)
    torch.testing.assert_close(gated.rollout(burn_in, 5), ungated.rollout(burn_in, 5))
    reloaded = WorldModel.from_pretrained(tmp_path / "ungated", step_gate=True).eval()
    assert reloaded.config.step_gate and not reloaded.project_gate.weight.any()
    torch.testing.assert_close(reloaded.rollout(burn_in, 5), ungated.rollout(burn_in, 5))
    gated.save_pretrained(tmp_path / "gated")
    with pytest.raises(BadInputError, match="unexpected keys .*project_gate"):
        load_initial_weights(tiny_world_model(second_order=True), str(tmp_path / "gated"))
    wider = WorldModel(WorldModelConfig(slot_dim=8, hidden_dim=16, num_layers=3, num_heads=2,
                                        feedforward_dim=32, window=3))
    with pytest.raises(BadInputError, match="missing keys .*layers.2"):
        load_initial_weights(wider, str(tmp_path / "ungated"))


def test_objects_are_split_into_still_and_moving_by_their_true_motion():
    true = torch.zeros(1, 3, 8, 8, dtype=torch.long)
    true[0, :, 0:2, 0:2] = 1  # still
    for k in range(3):
        true[0, k, 5:7, 2 * k:2 * k + 2] = 2  # 2 pixels right each frame
    true[0, 0, 4, 7] = 3  # in one frame only: neither
    motion, present = object_motion(true)
    torch.testing.assert_close(motion[0, :2], torch.tensor([0.0, 0.5], dtype=torch.float64))
    assert motion[0, 2].isnan() and present[0, :, 2].tolist() == [True, False, False]
    copied = torch.zeros_like(true)  # the first frame's objects, copied
    copied[:, :, 0:2, 0:2], copied[:, :, 5:7, 0:2] = 1, 2
    metric = OverlapByMotion(3)
    metric.update(copied, true)
    scores = metric.compute()
    torch.testing.assert_close(scores["still"], torch.ones(3, dtype=torch.float64))
    # the moving object has left the copy: its best segment is the one drawn around it
    torch.testing.assert_close(scores["moving"],
                               torch.tensor([1.0, 4 / 56, 4 / 56], dtype=torch.float64))


def test_burn_in_shorter_than_the_window_at_the_start_of_a_clip():
    model = tiny_world_model(window=4)
    first_frame = torch.randn(2, 1, 3, 8)
    rolled = model.rollout(first_frame, 5)  # the window fills with predictions, then slides
    frames = first_frame
    for k in range(5):
        torch.testing.assert_close(rolled[:, k], model.predict_next(frames[:, -4:]))
        frames = torch.cat([frames, rolled[:, k:k + 1]], dim=1)
    # t frames take the last t positions, as the same frames have at the end of a full window
    two_frames = torch.randn(2, 2, 3, 8)
    before = model.predict_next(two_frames)
    with torch.no_grad():  # positions a two-frame window does not use
        model.time_embedding[:2] += torch.randn(2, 16)
    torch.testing.assert_close(model.predict_next(two_frames), before)
    for position in (2, 3):
        with torch.no_grad():
            model.time_embedding[position] += torch.randn(16)
        assert not torch.allclose(model.predict_next(two_frames), before)


def test_a_removed_slot_stays_removed_and_does_not_influence_the_others():
    model = tiny_world_model()
    burn_in = torch.randn(2, 3, 4, 8)
    slot_mask = torch.tensor([[True, False, True, True], [True, True, True, False]])
    rolled = model.rollout(burn_in, 5, slot_mask)
    assert rolled[0, :, 1].abs().max() == 0 and rolled[1, :, 3].abs().max() == 0
    changed = burn_in.clone()
    changed[0, :, 1], changed[1, :, 3] = 50.0, -50.0
    torch.testing.assert_close(model.rollout(changed, 5, slot_mask), rolled)
    kept = [0, 2, 3]  # removal is the scene without that slot...
    torch.testing.assert_close(model.rollout(burn_in[:1, :, kept], 5), rolled[:1, :, kept])
    zeroed = burn_in[:1].clone()
    zeroed[:, :, 1] = 0  # ...which zeroing is not
    assert not torch.allclose(model.rollout(zeroed, 5)[:, :, kept], rolled[:1, :, kept])
    with pytest.raises(ValueError, match="removes every slot"):
        model.rollout(burn_in, 2, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"slot_mask must be bool \[b,n\] = \[2, 4\]"):
        model.rollout(burn_in, 2, slot_mask.float())


def test_imagine_encodes_rolls_out_and_decodes():
    torch.manual_seed(0)
    encoder = SmoothSAModel(tiny_config("cnn", "broadcast")).eval()
    model = tiny_world_model(slot_dim=32)
    video = torch.rand(1, 4, 3, 32, 32)
    slot_mask = torch.tensor([[True, True, False, True]])

    def imagine():
        return model.imagine(video, encoder, burn_in=2, steps=3, slot_mask=slot_mask,
                             generator=torch.Generator().manual_seed(0))

    imagined = imagine()
    assert imagined.observed_slots.shape == (1, 2, 4, 32)
    assert imagined.slots.shape == (1, 3, 4, 32)
    assert imagined.masks.shape == (1, 3, 4, 32, 32)
    assert imagined.reconstruction.shape == (1, 3, 3, 32, 32)
    assert imagined.masks[:, :, 2].abs().max() == 0
    assert torch.equal(imagine().masks, imagined.masks)


def test_baselines_on_hand_made_sequences():
    start, velocity = torch.randn(2, 3), torch.randn(2, 3)
    line = start + velocity * torch.arange(9.0)[:, None, None]  # [9,2,3]: linear motion
    torch.testing.assert_close(constant_velocity(line[None, :4], 5), line[None, 4:])
    assert torch.equal(copy_last(line[None, :4], 5), line[None, 3:4].expand(1, 5, 2, 3))
    accelerating = torch.tensor([0.0, 1.0, 3.0]).reshape(1, 3, 1, 1)
    assert constant_velocity(accelerating, 2).flatten().tolist() == [5.0, 7.0]
    assert torch.equal(constant_velocity(line[None, :1], 3), copy_last(line[None, :1], 3))
    with pytest.raises(ValueError, match="steps must be at least 1"):
        copy_last(line[None], 0)


def damped_motion(seed: int, num_videos: int, num_frames: int = 12) -> torch.Tensor:
    """[v,t,3,4] slots whose change halves every frame: x[t+1] - x[t] = (x[t] - x[t-1]) / 2."""
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(num_videos, 3, 4, generator=generator)
    velocity = torch.randn(num_videos, 3, 4, generator=generator)
    halving = 0.5 ** torch.arange(num_frames - 1.0)
    steps = velocity[:, None] * halving[None, :, None, None]  # [v,t-1,3,4]
    return torch.cat([start[:, None], start[:, None] + steps.cumsum(dim=1)], dim=1)


def test_least_squares_dynamics_learns_the_motion_of_its_training_videos():
    training, held_out = damped_motion(0, 20), damped_motion(1, 5)
    fitted = LeastSquaresDynamics.fit(iter(training), window=3, ridge=1e-9)
    rolled = fitted.rollout(held_out[:, :3], 9)
    torch.testing.assert_close(rolled, held_out[:, 3:], atol=1e-4, rtol=0)
    velocity_error = (constant_velocity(held_out[:, :3], 9) - held_out[:, 3:]).square().mean()
    assert velocity_error > 0.1 > (rolled - held_out[:, 3:]).square().mean()
    # one observed frame, padded with copies of itself: no change, so nothing moves
    torch.testing.assert_close(fitted.rollout(held_out[:, :1], 4),
                               copy_last(held_out[:, :1], 4), atol=1e-4, rtol=0)
    lines = torch.from_numpy(linear_motion(0, 20)).float()
    on_lines = LeastSquaresDynamics.fit(iter(lines), window=3, ridge=1e-9)
    torch.testing.assert_close(on_lines.rollout(lines[:2, :4], 6),
                               constant_velocity(lines[:2, :4], 6), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="no training video has more than window = 12"):
        LeastSquaresDynamics.fit(iter(training), window=12)
    with pytest.raises(ValueError, match="NaN or infinity"):
        LeastSquaresDynamics.fit([torch.full((5, 3, 4), float("nan"))], window=3)
    with pytest.raises(ValueError, match="slots of 5 channels; this model was fitted on 4"):
        fitted.rollout(torch.randn(1, 3, 3, 5), 2)


@pytest.mark.parametrize("decoder", ["autoregressive", "broadcast"])
def test_reconstruction_loss_trains_through_the_frozen_decoder(decoder):
    torch.manual_seed(0)
    encoder = SmoothSAModel(tiny_config("cnn", decoder)).eval().requires_grad_(False)
    model = tiny_world_model(slot_dim=32, window=2).train()
    batch = {"slots": torch.randn(2, 4, 4, 32),
             "frames": torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)}
    losses = DynamicsTask(2, 2, 0.5, encoder).training_loss(model, batch)
    assert set(losses) == {"loss", "slot_mse", "reconstruction"}
    torch.testing.assert_close(losses["loss"], losses["slot_mse"] + 0.5 * losses["reconstruction"])
    losses["reconstruction"].backward()
    assert model.project_out.weight.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in encoder.parameters())


def test_reconstruction_of_some_frames_decodes_those_frames_only():
    torch.manual_seed(0)
    encoder = SmoothSAModel(tiny_config("cnn", "broadcast")).eval().requires_grad_(False)
    model = tiny_world_model(slot_dim=32, window=2).train()
    batch = {"slots": torch.randn(3, 6, 4, 32),
             "frames": torch.randint(0, 256, (3, 6, 3, 32, 32), dtype=torch.uint8)}
    decoded = []
    original = encoder.decode_slots

    def recording(slots, *args):
        decoded.append(slots)
        return original(slots, *args)

    encoder.decode_slots = recording
    torch.manual_seed(1)
    losses = DynamicsTask(2, 4, 1.0, encoder, reconstruction_frames=2).training_loss(model, batch)
    torch.manual_seed(1)
    picked = torch.rand(3, 4).argsort(dim=1)[:, :2].sort(dim=1).values
    predicted = model(batch["slots"][:, :2], steps=4).slots
    chosen = predicted[torch.arange(3)[:, None], picked]
    torch.testing.assert_close(decoded[0], chosen)
    _, reconstruction = original(chosen)
    pixels = batch["frames"][:, 2:][torch.arange(3)[:, None], picked].float() / 255
    torch.testing.assert_close(losses["reconstruction"], F.mse_loss(reconstruction, pixels))
    torch.testing.assert_close(losses["slot_mse"], F.mse_loss(predicted, batch["slots"][:, 2:]))


def test_mask_loss_is_the_cross_entropy_of_decoded_masks_against_the_true_slots():
    torch.manual_seed(0)
    encoder = SmoothSAModel(tiny_config("cnn", "broadcast")).eval().requires_grad_(False)
    model = tiny_world_model(slot_dim=32, window=2).train()
    batch = {"slots": torch.randn(2, 4, 4, 32)}  # no frames: the mask loss needs none
    losses = DynamicsTask(2, 2, encoder=encoder, mask_weight=0.3).training_loss(model, batch)
    assert set(losses) == {"loss", "slot_mse", "mask"}
    predicted = model(batch["slots"][:, :2], steps=2).slots
    masks, _ = encoder.decode_slots(predicted)
    target, _ = encoder.decode_slots(batch["slots"][:, 2:])
    per_pixel = -(target * masks.log()).sum(dim=2)  # [b,t,H,W]
    assert per_pixel.shape == (2, 2, 32, 32)
    torch.testing.assert_close(losses["mask"], per_pixel.mean())
    torch.testing.assert_close(losses["loss"], losses["slot_mse"] + 0.3 * losses["mask"])
    # the true slots themselves score the masks' entropy, the least any prediction can
    assert mask_cross_entropy(target, target) < losses["mask"]
    losses["mask"].backward()
    assert model.project_out.weight.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in encoder.parameters())
    with pytest.raises(ValueError, match="mask_weight > 0 needs data.encoder"):
        load_config(DynamicsConfig, TINY, ["loss.mask_weight=1.0"])
    with pytest.raises(ValueError, match="mask_weight >= 0"):
        load_config(DynamicsConfig, TINY, ["loss.mask_weight=-1.0"])


def test_slot_weight_scales_the_slot_mse_and_zero_leaves_the_decoder_losses_alone():
    torch.manual_seed(0)
    encoder = SmoothSAModel(tiny_config("cnn", "broadcast")).eval().requires_grad_(False)
    model = tiny_world_model(slot_dim=32, window=2).train()
    batch = {"slots": torch.randn(2, 4, 4, 32)}
    full = DynamicsTask(2, 2, encoder=encoder, mask_weight=0.3).training_loss(model, batch)
    masks_only = DynamicsTask(2, 2, encoder=encoder, mask_weight=0.3,
                              slot_weight=0.0).training_loss(model, batch)
    torch.testing.assert_close(masks_only["slot_mse"], full["slot_mse"])  # still reported
    torch.testing.assert_close(masks_only["loss"], 0.3 * full["mask"])
    half = DynamicsTask(2, 2, encoder=encoder, mask_weight=0.3,
                        slot_weight=0.5).training_loss(model, batch)
    torch.testing.assert_close(half["loss"], 0.5 * full["slot_mse"] + 0.3 * full["mask"])
    with pytest.raises(ValueError, match="all 0: nothing to train on"):
        load_config(DynamicsConfig, TINY, ["loss.slot_weight=0"])
    with pytest.raises(ValueError, match="slot_weight, .* >= 0"):
        load_config(DynamicsConfig, TINY, ["loss.slot_weight=-1"])


def test_input_noise_perturbs_the_window_and_not_the_targets():
    model = tiny_world_model(slot_dim=8, window=3).eval()
    batch = {"slots": torch.randn(4, 5, 3, 8)}
    clean = DynamicsTask(3, 2).training_loss(model, batch)["slot_mse"]
    predicted = model(batch["slots"][:, :3], steps=2).slots
    torch.testing.assert_close(clean, F.mse_loss(predicted, batch["slots"][:, 3:]))
    torch.manual_seed(5)
    noisy = DynamicsTask(3, 2, input_noise=0.3).training_loss(model, batch)["slot_mse"]
    torch.manual_seed(5)
    window = batch["slots"][:, :3] + 0.3 * torch.randn(4, 3, 3, 8)
    predicted = model(window, steps=2).slots
    torch.testing.assert_close(noisy, F.mse_loss(predicted, batch["slots"][:, 3:]))
    assert abs(noisy.item() - clean.item()) > 1e-3
    with pytest.raises(ValueError, match="input_noise and mask_weight >= 0"):
        load_config(DynamicsConfig, TINY, ["loss.input_noise=-0.1"])


def test_shipped_configs_load_and_bad_ones_are_refused():
    for path in sorted(CONFIGS.glob("*.yaml")):
        config = load_config(DynamicsConfig, path)
        WorldModelConfig(slot_dim=8, **vars(config.model))
    with pytest.raises(ValueError, match="needs data.encoder and data.videos"):
        load_config(DynamicsConfig, TINY, ["loss.reconstruction_weight=1.0"])
    with pytest.raises(ValueError, match="reconstruction_frames must be in"):
        load_config(DynamicsConfig, TINY, ["loss.reconstruction_frames=4"])
    with pytest.raises(ValueError, match="remove_slot or rollout.remove_object_id, not both"):
        load_config(DynamicsConfig, TINY, ["rollout.remove_slot=1", "rollout.remove_object_id=2"])


def test_slot_windows_cover_every_start(tmp_path):
    videos = [np.arange(t, dtype=float)[:, None, None] + np.zeros((t, 2, 3)) for t in (7, 3, 5)]
    slots = load_slots(write_slots(tmp_path / "slots", {"train": videos}),
                       cache_dir=tmp_path / "hf")
    windows = SlotWindows(slots, length=4, stride=2)
    assert [(int(w["video_index"]), int(w["start"])) for w in windows] == [(0, 0), (0, 2), (2, 0)]
    assert windows[1]["slots"].shape == (4, 2, 3)
    assert windows[1]["slots"][:, 0, 0].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert [int(w["start"]) for w in SlotWindows(slots, 4, max_per_video=1)] == [0, 0]
    with pytest.raises(ValueError, match="no video has 8 frames"):
        SlotWindows(slots, 8)


def test_trained_world_model_beats_copying_on_linear_motion(tmp_path):
    folder = write_slots(tmp_path / "slots", {"train": linear_motion(0, 512),
                                              "validation": linear_motion(1, 16)})
    main(["--config", TINY, f"data.train_slots={folder}", f"data.evaluation_slots={folder}",
          f"training.output_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'hf'}"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics) == {"slot_mse", "slot_mse_step_01", "slot_mse_step_02",
                            "slot_mse_step_03"}
    assert (tmp_path / "run" / "dynamics.yaml").is_file()
    model = WorldModel.from_pretrained(tmp_path / "run" / "model").eval()
    windows = SlotWindows(load_slots(folder, "validation", cache_dir=tmp_path / "hf"), 9,
                          max_per_video=1)
    results = evaluate_rollouts(model, None, DataLoader(windows, batch_size=8), 3, 6)
    learned, copied = results["world model"]["slot_mse"], results["copy last"]["slot_mse"]
    assert all(learned[k] < 0.9 * copied[k] for k in range(2, 6)), (learned, copied)
    assert max(results["constant velocity"]["slot_mse"]) < 1e-10  # exact on linear motion


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    import downstream.head_training as head_training

    folder = write_slots(tmp_path / "slots", {"train": linear_motion(0, 16, 8)})

    def train(name):
        main(["--config", TINY, f"data.train_slots={folder}", f"data.cache_dir={tmp_path / 'hf'}",
              f"training.output_dir={tmp_path / name}", "training.max_steps=6",
              "training.checkpoint_every=3", "training.batch_size=4"])

    train("whole")
    original = head_training.save_checkpoint

    def crash_after_first_checkpoint(accelerator, checkpoints, step, keep):
        original(accelerator, checkpoints, step, keep)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(head_training, "save_checkpoint", crash_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train("interrupted")
    monkeypatch.setattr(head_training, "save_checkpoint", original)
    train("interrupted")
    whole = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "interrupted" / "model" / "model.safetensors")
    assert whole.keys() == resumed.keys()
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), key


def test_rollout_dataset_round_trips_through_load_slots(tmp_path):
    observed_slots = np.random.default_rng(0).standard_normal((3, 7, 3, 8))
    folder = write_slots(tmp_path / "slots", {"validation": observed_slots})
    model = tiny_world_model()
    model.save_pretrained(tmp_path / "world")
    main(["rollout", "--config", TINY, "--world-model", str(tmp_path / "world"),
          "--slots", str(folder), "--output", str(tmp_path / "rollout"),
          f"data.cache_dir={tmp_path / 'hf'}", "rollout.observed_frames=5", "rollout.steps=4",
          "rollout.remove_slot=1", "rollout.batch_size=2"])
    rollouts = load_slots(tmp_path / "rollout", "validation", cache_dir=tmp_path / "hf")
    assert slot_spec(rollouts.features) == SlotSpec(3, 8, "float32")
    assert slot_provenance(rollouts) == PROVENANCE
    assert rollouts["video_index"] == [10000, 10001, 10002]
    assert set(rollouts["observed_frames"]) == {5} and set(rollouts["predicted_frames"]) == {4}
    assert set(rollouts["removed_slot"]) == {1}
    assert set(rollouts["world_model_id"]) == {str(tmp_path / "world")}
    written = torch.tensor(np.array(rollouts.with_format("numpy")["slots"]))
    observed = torch.tensor(observed_slots, dtype=torch.float32)[:, :5]
    slot_mask = torch.tensor([True, False, True]).expand(3, 3)
    expected = model.rollout(observed, 4, slot_mask)
    observed[:, :, 1] = 0
    torch.testing.assert_close(written, torch.cat([observed, expected], dim=1))
    assert "split: validation" in (tmp_path / "rollout" / "README.md").read_text()


def test_slot_of_object_is_the_slot_that_covers_it_best():
    index_maps = torch.zeros(2, 4, 4, dtype=torch.int64)
    index_maps[:, :2, :2] = 1  # object 1: the top-left quarter
    index_maps[:, 2:, :] = 2  # object 2: the bottom half
    slot_masks = torch.zeros(2, 3, 4, 4)
    slot_masks[:, 0] = 0.5  # slot 0: everywhere a little
    slot_masks[:, 2, :2, :3] = 1.0  # slot 2: the top-left, a bit wider
    slot_masks[:, 1, 2:] = 1.0  # slot 1: the bottom half
    assert slot_of_object(slot_masks, index_maps, 1) == 2
    assert slot_of_object(slot_masks, index_maps, 2) == 1
    assert slot_of_object(slot_masks, index_maps, 3) is None


def test_horizon_metrics_on_a_hand_made_case():
    target = torch.zeros(2, 3, 2, 2)
    predicted = target + torch.tensor([0.0, 1.0, 2.0])[None, :, None, None]  # error k^2
    true_segmentation = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 1]]).reshape(1, 1, 2, 4)
    true_segmentation = true_segmentation.expand(2, 3, 2, 4)
    relabelled = (true_segmentation + 1) % 3  # the same segments under other ids
    wrong = torch.zeros_like(true_segmentation)  # one segment
    segmentation = torch.stack([relabelled[:, 0], wrong[:, 1], relabelled[:, 2]], dim=1)
    metrics = HorizonMetrics(3)
    metrics.update(predicted, target, segmentation, true_segmentation)
    scores = metrics.compute()
    assert scores["slot_mse"] == [0.0, 1.0, 4.0]
    assert scores["ari"] == pytest.approx([1.0, 0.0, 1.0])
    assert scores["fg_ari"][0] == pytest.approx(1.0)
    expected = adjusted_rand_index(wrong[:, 1], true_segmentation[:, 1], ignore_background=True)
    assert scores["fg_ari"][1] == pytest.approx(expected.mean().item())
    # one segment: matched to object 1 (IoU 3/8), object 2 unmatched (0)
    assert scores["miou"] == pytest.approx([1.0, (3 / 8 + 0) / 2, 1.0])
    # one segment is the background's and takes every object
    assert scores["kept"] == [1.0, 0.0, 1.0] and scores["to_background"] == [0.0, 1.0, 0.0]
    assert scores["background_claimed"] == [0.0, 0.0, 0.0]
    assert panel_title("fg_ari") == "FG-ARI (higher is better)"
    assert panel_title("to_background").endswith("(lower is better)")
    assert "higher" not in panel_title("slot_mse") + panel_title("to_background")
    table = horizon_table({"model": scores, "other": {"slot_mse": [0.5, 0.5, 0.5]}})
    assert "slot MSE" in table and "FG-ARI" in table and "4.0000" in table


def test_horizon_metrics_count_the_background_an_object_slot_claims():
    true_segmentation = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 1]]).reshape(1, 1, 2, 4)
    grown = true_segmentation.clone()
    grown[0, 0, 0, 1] = 1  # object 1's slot also draws a background pixel beside it
    metrics = HorizonMetrics(1)
    metrics.update(torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 2, 3), grown, true_segmentation)
    scores = metrics.compute()
    assert scores["background_claimed"] == pytest.approx([1 / 5])  # 5 object pixels
    assert scores["fg_ari"] == pytest.approx([1.0])  # which FG-ARI does not see
    assert scores["ari"][0] < 1.0


@dataclass
class TinyClevrer:
    root: Path  # CLEVRER-layout videos, split validation
    slots: np.ndarray  # [2,8,4,32] the encoder's slots of the two videos
    folder: Path  # their slot dataset, with the encoder's masks
    encoder: Path
    world_model: Path
    cache: Path


@pytest.fixture(scope="module")
def tiny_clevrer(tmp_path_factory) -> TinyClevrer:
    """Two tiny CLEVRER-layout videos, a tiny encoder, its slots, an untrained world model."""
    tmp_path = tmp_path_factory.mktemp("tiny-clevrer")
    directory = make_clevrer_directory(tmp_path / "clevrer", splits={"validation": (10000,
                                                                                    10001)})
    torch.manual_seed(0)
    encoder = SmoothSAModel(tiny_config("cnn")).eval()
    encoder.save_pretrained(tmp_path / "encoder")
    videos = load_clevrer_videos(directory.root, "validation", VideoLoadingConfig(size=(32, 32)),
                                 cache_dir=tmp_path / "hf")
    frames = torch.tensor(np.array(videos.with_format("numpy")["frames"])).float() / 255
    with torch.no_grad():
        encoded = encoder(frames, generator=torch.Generator().manual_seed(0), decode=False)
    slots = encoded.slots.numpy()
    _, identity = load_frozen_encoder(str(tmp_path / "encoder"))
    folder = write_slots(tmp_path / "slots", {"validation": slots},
                         {"validation": encoded.attention.numpy()},
                         SlotProvenance("tiny", identity.config_hash, 1))
    tiny_world_model(slot_dim=32).save_pretrained(tmp_path / "world")
    return TinyClevrer(directory.root, slots, folder, tmp_path / "encoder", tmp_path / "world",
                       tmp_path / "hf")


def test_evaluate_command_on_tiny_clevrer(tiny_clevrer, tmp_path, capsys):
    data = tiny_clevrer
    results = main(["evaluate", "--config", TINY, "--world-model", str(data.world_model),
                    "--slots", str(data.folder), "--videos", str(data.root), "--encoder",
                    str(data.encoder), "--output", str(tmp_path / "evaluation"),
                    f"data.cache_dir={data.cache}", "evaluation.horizon=4",
                    f"data.train_slots={data.folder}", "data.train_split=validation"])
    saved = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    # (NaN where a horizon has no still or no moving object, which == cannot compare)
    assert json.dumps(saved["scores"], sort_keys=True) == json.dumps(results, sort_keys=True)
    assert saved["burn_in"] == 3 and saved["num_videos"] == 2 and saved["mask_size"] == [16, 16]
    assert set(results) == {"world model", "copy last", "constant velocity", "least squares",
                            "true slots"}
    copied = [float(np.mean((data.slots[:, 3 + k] - data.slots[:, 2]) ** 2)) for k in range(4)]
    assert results["copy last"]["slot_mse"] == pytest.approx(copied, rel=1e-5)
    slots = torch.from_numpy(data.slots)  # the least-squares fit on the same two videos
    fitted = LeastSquaresDynamics.fit(iter(slots), window=3).rollout(slots[:, :3], 4)
    fitted_error = (fitted - slots[:, 3:7]).square().mean(dim=(0, 2, 3)).tolist()
    assert results["least squares"]["slot_mse"] == pytest.approx(fitted_error, rel=1e-4)
    assert results["true slots"]["slot_mse"] == [0.0] * 4
    for scores in results.values():
        assert all(-1 <= value <= 1 for name in ("ari", "fg_ari", "miou")
                   for value in scores[name])
        assert all(0 <= value <= 1 for name in ("kept", "to_background")
                   for value in scores[name])
        assert all(value >= 0 for value in scores["background_claimed"])
    assert (tmp_path / "evaluation" / "horizons.png").read_bytes()[:4] == b"\x89PNG"
    assert "FG-ARI" in capsys.readouterr().out


def test_an_encoder_other_than_the_slots_one_is_refused(tiny_clevrer, tmp_path):
    data = tiny_clevrer
    other = SmoothSAModel(tiny_config("cnn", num_iterations=2))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(BadInputError, match="is not the one the slots came from"):
        main(["evaluate", "--config", TINY, "--world-model", str(data.world_model),
              "--slots", str(data.folder), "--videos", str(data.root), "--encoder",
              str(tmp_path / "other"), f"data.cache_dir={data.cache}"])


def test_least_squares_from_other_slots_is_refused(tiny_clevrer, tmp_path):
    data = tiny_clevrer
    other = write_slots(tmp_path / "other", {"train": list(data.slots)},
                        provenance=SlotProvenance("tiny", "another-hash", 1))
    with pytest.raises(BadInputError, match="come from different encoders or frame strides"):
        main(["evaluate", "--config", TINY, "--world-model", str(data.world_model),
              "--slots", str(data.folder), "--videos", str(data.root), "--encoder",
              str(data.encoder), "--output", str(tmp_path / "evaluation"),
              f"data.cache_dir={data.cache}", f"data.train_slots={other}"])


def test_rollout_without_an_object_matched_by_its_mask(tiny_clevrer, tmp_path):
    data = tiny_clevrer
    main(["rollout", "--config", TINY, "--world-model", str(data.world_model), "--slots",
          str(data.folder), "--videos", str(data.root), "--output", str(tmp_path / "rollout"),
          f"data.cache_dir={data.cache}", "rollout.remove_object_id=1",
          "rollout.observed_frames=4", "rollout.steps=2"])
    rollouts = load_slots(tmp_path / "rollout", "validation", cache_dir=data.cache)
    for row in rollouts.with_format("numpy"):
        assert 0 <= row["removed_slot"] < 4 and row["slots"].shape == (6, 4, 32)
        assert np.all(row["slots"][:, row["removed_slot"]] == 0)


def test_training_with_the_decoder_reconstruction_loss(tiny_clevrer, tmp_path):
    data = tiny_clevrer
    metrics = main(["--config", TINY, "--encoder", str(data.encoder), "--videos", str(data.root),
                    f"data.train_slots={data.folder}", "data.train_split=validation",
                    f"data.cache_dir={data.cache}", f"training.output_dir={tmp_path / 'run'}",
                    "loss.reconstruction_weight=1.0", "training.max_steps=2",
                    "training.batch_size=2"])
    assert metrics == {}  # no evaluation slots
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_videos_are_refused_for_joined_splits(tiny_clevrer):
    data = tiny_clevrer
    slots = load_slots(data.folder, "validation", cache_dir=data.cache)
    with pytest.raises(ValueError, match="one split at a time, got 'validation\\+test'"):
        load_videos_for_slots(slots, data.root, "validation+test", (32, 32), with_masks=False)
