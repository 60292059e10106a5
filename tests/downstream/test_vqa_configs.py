"""Every shipped VQA config loads; the baselines differ from the main job only in their inputs;
finished runs print side by side."""

import json
from dataclasses import replace

import pytest

from downstream.vqa import DEFAULT_CONFIG, REPOSITORY, VqaConfig, main, sized_reasoner_config
from ocl.config_loading import load_config

CONFIGS = sorted((REPOSITORY / "configs" / "vqa").glob("*.yaml"))
BASELINES = {"question_only": "none", "shuffled_slots": "shuffled_slots",
             "object_states": "object_states"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_every_shipped_config_loads(path):
    config = load_config(VqaConfig, path, ["data.clevrer_root=clevrer", "data.slots=slots"])
    assert config.training.batch_size % config.training.gradient_accumulation == 0


def test_baselines_are_the_main_job_with_other_inputs():
    default = load_config(VqaConfig, DEFAULT_CONFIG)
    assert {path.stem for path in CONFIGS} >= {"default", "tiny", *BASELINES}
    for name, inputs in BASELINES.items():
        baseline = load_config(VqaConfig, REPOSITORY / "configs" / "vqa" / f"{name}.yaml")
        assert baseline.data.inputs == inputs
        assert baseline.training.output_dir != default.training.output_dir
        assert replace(baseline, data=replace(baseline.data, inputs="slots"),
                       training=replace(baseline.training,
                                        output_dir=default.training.output_dir)) == default


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="data.inputs must be one of"):
        load_config(VqaConfig, None, ["data.inputs=pixels", "data.clevrer_root=x"])
    with pytest.raises(ValueError, match="needs data.slots"):
        load_config(VqaConfig, None, ["data.clevrer_root=x"])
    with pytest.raises(ValueError, match="the test split has no answers"):
        load_config(VqaConfig, None, ["data.train_split=test", "data.inputs=none",
                                      "data.clevrer_root=x"])
    with pytest.raises(ValueError, match="model.pair_tokens pairs slot tracks: it needs "
                                         "model.slot_tokens=track, not 'frame'"):
        load_config(VqaConfig, None, ["model.pair_tokens=true", "data.inputs=none",
                                      "data.clevrer_root=x"])


def test_pair_tokens_are_built_only_where_there_are_slots():
    config = load_config(VqaConfig, None, ["model.slot_tokens=track", "model.pair_tokens=true",
                                           "data.slots=slots", "data.clevrer_root=x"])
    assert sized_reasoner_config(config, 10, (7, 64)).pair_tokens
    assert not sized_reasoner_config(config, 10, None).pair_tokens  # the question alone


def test_compare_prints_runs_side_by_side(tmp_path, capsys):
    for name, accuracy in (("vqa", 0.9), ("vqa-question-only", 0.4)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(
            json.dumps({"descriptive/accuracy": accuracy}))
    main(["--compare", str(tmp_path / "vqa"), str(tmp_path / "vqa-question-only")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["vqa", "vqa-question-only"]
    assert lines[1].split() == ["descriptive/accuracy", "90.0", "40.0"]


def test_compare_names_an_unfinished_run(tmp_path):
    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / "metrics.json").write_text(json.dumps({"descriptive/accuracy": 0.5}))
    (tmp_path / "running").mkdir()
    with pytest.raises(SystemExit, match=r"running has no metrics.json: not a finished VQA run"):
        main(["--compare", str(tmp_path / "finished"), str(tmp_path / "running")])
    (tmp_path / "running" / "metrics.json").mkdir()
    with pytest.raises(SystemExit, match=r"running has no metrics.json: not a finished VQA run"):
        main(["--compare", str(tmp_path / "finished"), str(tmp_path / "running")])
    (tmp_path / "running" / "metrics.json").rmdir()
    (tmp_path / "running" / "metrics.json").write_text("{")
    with pytest.raises(SystemExit, match=r"metrics.json is not valid JSON"):
        main(["--compare", str(tmp_path / "finished"), str(tmp_path / "running")])


def test_runs_of_one_name_keep_a_column_each(tmp_path, capsys):
    for parent, accuracy in (("first", 0.9), ("second", 0.4)):
        (tmp_path / parent / "vqa").mkdir(parents=True)
        (tmp_path / parent / "vqa" / "metrics.json").write_text(
            json.dumps({"descriptive/accuracy": accuracy}))
    runs = [str(tmp_path / "first" / "vqa"), str(tmp_path / "second" / "vqa")]
    main(["--compare", *runs])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == runs
    assert lines[1].split() == ["descriptive/accuracy", "90.0", "40.0"]
