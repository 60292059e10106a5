"""The shared head-training loop: it learns, resumes to the same weights, writes its outputs."""

import json

import pytest
import torch
from accelerate import Accelerator
from torch.utils.data import TensorDataset
from transformers import PretrainedConfig, PreTrainedModel

from downstream.head_training import (
    HeadTrainingConfig,
    StepSampler,
    build_accelerator,
    train_head,
)
from tasks.bad_input import BadInputError


class LineConfig(PretrainedConfig):
    model_type = "test_line"
    width: int = 3


class Line(PreTrainedModel):
    config_class = LineConfig

    def __init__(self, config):
        super().__init__(config)
        self.linear = torch.nn.Linear(config.width, 1)
        self.dropout = torch.nn.Dropout(0.1)
        self.post_init()

    def _init_weights(self, module):
        """PyTorch's initialisation."""

    def forward(self, x):
        return self.linear(self.dropout(x)).squeeze(-1)


class Regression:
    def training_loss(self, model, batch):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(model(x), y)}

    def evaluate(self, model, batches, accelerator):
        errors = []
        for x, y in batches:
            errors.append(accelerator.gather_for_metrics((model(x) - y).pow(2)))
        return {"mse": torch.cat(errors).mean().item()}


def data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, generator=generator)
    return TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3)


def run(tmp_path, name, task=None, **fields):
    settings = dict(max_steps=40, batch_size=8, learning_rate=0.2, weight_decay=0.0,
                    tracker="none", checkpoint_every=10)
    config = HeadTrainingConfig(output_dir=str(tmp_path / name), **{**settings, **fields})
    torch.manual_seed(config.seed)
    model = Line(LineConfig())
    accelerator = build_accelerator(config, name)
    return train_head(model, task or Regression(), data(), data(), None, config, accelerator)


def weights(path):
    from safetensors.torch import load_file
    return load_file(path / "model" / "model.safetensors")


def test_head_learns_and_writes_model_and_metrics(tmp_path):
    x, y = data().tensors
    torch.manual_seed(0)
    untrained = (Line(LineConfig()).eval()(x) - y).pow(2).mean().item()
    metrics = run(tmp_path, "fit")
    assert untrained > 2 and metrics["mse"] < 0.2
    saved = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    assert Line.from_pretrained(tmp_path / "fit" / "model").linear.weight.shape == (1, 3)


def test_resume_after_a_crash_gives_the_same_weights(tmp_path, monkeypatch):
    run(tmp_path, "whole")
    import downstream.head_training as head_training

    original = head_training.save_checkpoint
    calls = []

    def crash_after_second_checkpoint(accelerator, folder, step, keep):
        original(accelerator, folder, step, keep)
        calls.append(step)
        if step == 20:
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(head_training, "save_checkpoint", crash_after_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "interrupted")
    monkeypatch.setattr(head_training, "save_checkpoint", original)
    run(tmp_path, "interrupted")
    for key, value in weights(tmp_path / "whole").items():
        assert torch.equal(value, weights(tmp_path / "interrupted")[key]), key


def test_training_logs_the_mean_of_the_losses_since_the_last_log(tmp_path, monkeypatch):
    returned = []

    class Recorded(Regression):
        def training_loss(self, model, batch):
            losses = super().training_loss(model, batch)
            returned.append(losses["loss"].item())
            return losses

    logged = []
    monkeypatch.setattr(Accelerator, "log",
                        lambda self, values, step=None, log_kwargs=None: logged.append(
                            (step, values)))
    run(tmp_path, "logged", task=Recorded(), max_steps=20, log_every=5,
        gradient_accumulation=2)
    logged = [(step, values) for step, values in logged if "train/loss" in values]
    assert [step for step, _ in logged] == [5, 10, 15, 20]
    assert len(returned) == 40  # two micro-batches a step
    for step, values in logged:
        window = returned[2 * (step - 5):2 * step]
        assert values["train/loss"] == pytest.approx(sum(window) / len(window))
    assert len({values["train/loss"] for _, values in logged}) == 4


def test_a_run_starts_from_initial_weights_and_refuses_ones_that_do_not_fit(tmp_path):
    run(tmp_path, "first")
    first = tmp_path / "first" / "model"
    metrics = run(tmp_path, "continued", max_steps=1, learning_rate=1e-6,
                  initial_weights=str(first))
    assert metrics["mse"] < 0.2  # one tiny step from the trained weights, not from scratch
    inputs = json.loads((tmp_path / "continued" / "run_inputs.json").read_text())
    assert inputs["initial_weights"]["folder"] == str(first)
    assert len(inputs["initial_weights"]["weights_hash"]) == 16
    with pytest.raises(BadInputError, match="no model.safetensors there"):
        run(tmp_path, "missing", initial_weights=str(tmp_path / "nowhere"))
    wider = Line(LineConfig(width=4))
    wider.save_pretrained(tmp_path / "wider")
    with pytest.raises(BadInputError, match="do not fit this model"):
        run(tmp_path, "mismatched", initial_weights=str(tmp_path / "wider"))


def test_step_sampler_is_a_function_of_seed_and_step():
    whole = list(StepSampler(10, 4, 7, seed=3))
    assert len(whole) == 28 and sorted(whole[:10]) == list(range(10))
    assert list(StepSampler(10, 4, 7, seed=3, start_step=5)) == whole[20:]
    assert list(StepSampler(10, 4, 7, seed=4)) != whole


def test_batch_must_split_over_accumulation(tmp_path):
    with pytest.raises(ValueError, match="batch_size 8 must divide"):
        run(tmp_path, "odd", gradient_accumulation=3)


class SummedRegression(Regression):
    """Evaluation with a torchmetrics metric, whose states sum over processes."""

    def evaluate(self, model, batches, accelerator):
        from torchmetrics import MeanSquaredError

        metric = MeanSquaredError().to(accelerator.device)
        for x, y in batches:
            metric.update(model(x), y)
        return {"mse": metric.compute().item()}


def test_disjoint_evaluation_gives_the_padded_metrics(tmp_path):
    padded = run(tmp_path, "padded")
    config = HeadTrainingConfig(
        output_dir=str(tmp_path / "disjoint"), max_steps=40, batch_size=8, learning_rate=0.2,
        weight_decay=0.0, tracker="none", checkpoint_every=10, evaluation_batch_size=7,
    )
    torch.manual_seed(config.seed)
    accelerator = build_accelerator(config, "disjoint")
    disjoint = train_head(Line(LineConfig()), SummedRegression(), data(), data(), None, config,
                          accelerator, evaluation_sharding="disjoint")
    assert disjoint["mse"] == pytest.approx(padded["mse"], rel=1e-5)


def test_disjoint_shards_cover_every_sample_once():
    from types import SimpleNamespace

    from downstream.head_training import evaluation_batches

    config = HeadTrainingConfig(evaluation_batch_size=4)
    seen = []
    for process in range(3):
        accelerator = SimpleNamespace(process_index=process, num_processes=3,
                                      device=torch.device("cpu"))
        for x, _ in evaluation_batches(data(), None, config, accelerator, "disjoint"):
            seen.extend(x[:, 0].tolist())
    assert sorted(seen) == sorted(data().tensors[0][:, 0].tolist())
    with pytest.raises(ValueError, match="padded or disjoint"):
        evaluation_batches(data(), None, config, accelerator, "uneven")
