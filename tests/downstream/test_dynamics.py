"""The slot world model: rollouts, windows, removal, baselines, on tiny models."""


import pytest
import torch

from downstream.dynamics_baselines import constant_velocity, copy_last
from downstream.world_model import WorldModel, WorldModelConfig
from ocl.modeling import SmoothSAModel
from tests.ocl.tiny import tiny_config


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
