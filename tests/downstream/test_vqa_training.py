"""The VQA entry point end to end on the tiny CLEVRER directory: it learns, writes its outputs
and a valid submission, resumes to the same weights, runs the baselines and the on-the-fly
encoder, and names bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from downstream.reasoner import ReasonerConfig, ReasonerModel
from downstream.submission import validate_submission
from downstream.vqa import (
    REPOSITORY,
    VqaConfig,
    load_vqa_data,
    parse_arguments,
    reasoner_config,
    run_vqa,
)
from downstream.vqa_task import VqaTask
from ocl.config_loading import load_config
from tasks.collate import QuestionCollator

TINY = REPOSITORY / "configs" / "vqa" / "tiny.yaml"


def tiny_config(files, output: Path, *overrides: str) -> VqaConfig:
    return load_config(VqaConfig, TINY, [
        f"data.clevrer_root={files.clevrer.root}", f"data.slots={files.slots}",
        f"data.cache_dir={files.cache}", f"training.output_dir={output}", *overrides,
    ])


def mean_training_loss(model, dataset) -> float:
    batch = QuestionCollator()([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        return VqaTask().training_loss(model.eval(), batch)["loss"].item()


def test_training_lowers_the_loss_and_writes_every_output(vqa_files, tmp_path):
    config = tiny_config(vqa_files, tmp_path / "run", "training.max_steps=40",
                         "training.learning_rate=0.005",
                         "data.submission_split=test")
    data = load_vqa_data(config.data, 0, torch.device("cpu"))
    assert len(data.train) == 15 and data.train[0]["slots"].shape == (3, 3, 8)
    torch.manual_seed(0)
    untrained = mean_training_loss(ReasonerModel(reasoner_config(config, data)), data.train)
    metrics = run_vqa(config)
    trained = ReasonerModel.from_pretrained(tmp_path / "run" / "model")
    assert mean_training_loss(trained, data.train) < 0.5 * untrained
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == pytest.approx(metrics)
    assert set(metrics) == {"descriptive/accuracy"} | {
        f"{kind}/{measure}" for kind in ("explanatory", "predictive", "counterfactual")
        for measure in ("per_option", "per_question")} | {
        "descriptive/count", "descriptive/query_color"}  # the validation questions' subtypes
    assert (tmp_path / "run" / "vocabulary.json").is_file()
    assert load_config(VqaConfig, tmp_path / "run" / "config.yaml") == config
    scenes = json.loads(vqa_files.clevrer.question_path("test").read_text())
    validate_submission(json.loads((tmp_path / "run" / "submission.json").read_text()), scenes)


def test_resume_after_a_crash_continues_the_same_run(vqa_files, tmp_path, monkeypatch):
    run_vqa(tiny_config(vqa_files, tmp_path / "whole", "model.dropout=0.1"))
    import downstream.head_training as head_training

    original = head_training.save_checkpoint

    def crash_after_first_checkpoint(accelerator, folder, step, keep):
        original(accelerator, folder, step, keep)
        if step == 6:
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(head_training, "save_checkpoint", crash_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_vqa(tiny_config(vqa_files, tmp_path / "resumed", "model.dropout=0.1"))
    monkeypatch.setattr(head_training, "save_checkpoint", original)
    assert not (tmp_path / "resumed" / "model").exists()
    run_vqa(tiny_config(vqa_files, tmp_path / "resumed", "model.dropout=0.1"))
    whole = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), key


def test_checkpoints_trained_on_other_slots_are_refused_not_resumed(vqa_files, tmp_path):
    slots = tmp_path / "slots"
    shutil.copytree(vqa_files.slots, slots)
    record = {"encoder": {"id": "small", "weights_hash": "1" * 16}, "splits": {}}
    (slots / "extraction.json").write_text(json.dumps(record))
    config = tiny_config(vqa_files, tmp_path / "run", f"data.slots={slots}")
    run_vqa(config)
    assert (tmp_path / "run" / "checkpoints" / "step_0000012").is_dir()
    assert run_vqa(config) == pytest.approx(json.loads((tmp_path / "run" / "metrics.json")
                                                       .read_text()))  # same inputs: resumes
    recorded = json.loads((tmp_path / "run" / "run_inputs.json").read_text())["data"]
    assert recorded["slots"] == str(slots) and "question_types" not in recorded  # defaults left out
    with pytest.raises(ValueError, match=r"data: .*question_types"):
        run_vqa(tiny_config(vqa_files, tmp_path / "run", "data.question_types=[descriptive]"))

    record["encoder"]["weights_hash"] = "2" * 16  # the same folder re-extracted by another encoder
    (slots / "extraction.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"trained on other inputs \(slots: .*1111.* there, "):
        run_vqa(config)
    with pytest.raises(ValueError, match="data: "):
        run_vqa(tiny_config(vqa_files, tmp_path / "run", "data.num_frames=2"))


@pytest.mark.parametrize("inputs,use_slots,slot_shape", [
    ("none", False, None),
    ("shuffled_slots", True, (3, 3, 8)),
    ("object_states", True, (3, 4, 20)),  # max_objects 4 in tiny.yaml
])
def test_baselines_train_with_the_same_script(vqa_files, tmp_path, inputs, use_slots,
                                              slot_shape):
    config = tiny_config(vqa_files, tmp_path / inputs, f"data.inputs={inputs}",
                         "training.max_steps=2")
    data = load_vqa_data(config.data, 0, torch.device("cpu"))
    row = data.train[0]
    assert (row.get("slots") is None) == (slot_shape is None)
    if slot_shape is not None:
        assert row["slots"].shape == slot_shape
    run_vqa(config)
    model = ReasonerModel.from_pretrained(tmp_path / inputs / "model")
    assert model.config.use_slots == use_slots


def test_rollout_flag_feeds_predictive_and_counterfactual_questions(vqa_files, tmp_path):
    from tests.downstream.vqa_files import write_slot_dataset

    rollout = write_slot_dataset(tmp_path / "rollout", vqa_files.clevrer.splits, num_frames=9,
                                 offset=100.0)
    config, _ = parse_arguments([
        "--config", str(TINY), "--rollout", str(rollout),
        f"data.clevrer_root={vqa_files.clevrer.root}", f"data.slots={vqa_files.slots}",
        f"data.cache_dir={vqa_files.cache}", f"training.output_dir={tmp_path / 'run'}",
        "training.max_steps=30",
    ])
    assert config.data.rollout == str(rollout)
    data = load_vqa_data(config.data, 0, torch.device("cpu"))
    for index in range(len(data.train)):
        row = data.train[index]
        frames = row["slots"][:, 0, 0] - row["slots"][0, 0, 0]  # frame f holds base + f
        if row["question_type"] in ("predictive", "counterfactual"):
            assert row["slots"].min() > 50  # from the rollout
            assert frames.tolist() == pytest.approx([0, 4, 8], abs=0.1)  # 3 of 9 frames, ends in
        else:
            assert row["slots"].max() < 50
            assert frames.tolist() == pytest.approx([0, 2, 4], abs=0.1)  # 3 of 5 frames
    run_vqa(config)
    with pytest.raises(ValueError, match="a rollout extends slots"):
        tiny_config(vqa_files, tmp_path / "x", f"data.rollout={rollout}", "data.inputs=none")


def test_a_reasoner_with_rollout_frames_reads_observed_and_predicted_frames(vqa_files,
                                                                           tmp_path):
    from tests.downstream.vqa_files import write_slot_dataset

    rollout = write_slot_dataset(tmp_path / "rollout", vqa_files.clevrer.splits, num_frames=9,
                                 offset=100.0, observed_frames=5)
    config = tiny_config(vqa_files, tmp_path / "run", f"data.rollout={rollout}",
                         "data.rollout_frames=2", "training.max_steps=2")
    run_vqa(config)
    model = ReasonerModel.from_pretrained(tmp_path / "run" / "model")
    assert model.config.max_frames == 5  # 3 observed + 2 predicted
    with pytest.raises(ValueError, match="only with a rollout"):
        tiny_config(vqa_files, tmp_path / "x", "data.rollout_frames=2")


def test_slots_encoded_on_the_fly_are_the_extracted_slots(vqa_files, tmp_path):
    from downstream.extract import ExtractionConfig, extract_slots
    from downstream.video_features import SlotDatasetFeatures
    from ocl.modeling import SmoothSAModel
    from tasks.slots import load_slots
    from tests.ocl.tiny import tiny_config as tiny_encoder_config

    torch.manual_seed(0)
    SmoothSAModel(tiny_encoder_config()).save_pretrained(tmp_path / "encoder")
    config = tiny_config(vqa_files, tmp_path / "run", "data.slots=''",
                         f"data.encoder={tmp_path / 'encoder'}", "data.frame_stride=2",
                         "training.max_steps=2")
    data = load_vqa_data(config.data, 0, torch.device("cpu"))
    assert data.train[0]["slots"].shape == (3, 4, 32)  # tiny encoder: 4 slots of 32
    assert data.train.features.frame_counts().tolist() == [4, 4, 4]  # 8 frames, stride 2
    extract_slots(ExtractionConfig(encoder=str(tmp_path / "encoder"),
                                   data=str(vqa_files.clevrer.root), out=str(tmp_path / "slots"),
                                   splits=["train"], frame_stride=2, seed=0))
    extracted = SlotDatasetFeatures(load_slots(tmp_path / "slots", cache_dir=tmp_path / "hf"))
    for video in (0, 1, 2):
        np.testing.assert_allclose(data.train.features(video), extracted(video), atol=2e-2)
    run_vqa(config)


def test_gradient_accumulation_gives_the_same_run(vqa_files, tmp_path):
    """Micro-batches of 4 accumulated twice make the step a batch of 8 makes (the loss is a sum
    over questions over a fixed count)."""
    for name, accumulation in (("whole", 1), ("accumulated", 2)):
        run_vqa(tiny_config(vqa_files, tmp_path / name,
                            f"training.gradient_accumulation={accumulation}"))
    torch.manual_seed(0)
    initial = ReasonerModel(ReasonerConfig.from_pretrained(tmp_path / "whole" / "model"))
    initial = initial.state_dict()
    whole, accumulated = (load_file(tmp_path / name / "model" / "model.safetensors")
                          for name in ("whole", "accumulated"))
    moved = sum((value - initial[key]).abs().sum() for key, value in whole.items())
    apart = sum((value - accumulated[key]).abs().sum() for key, value in whole.items())
    assert apart < 1e-3 * moved
