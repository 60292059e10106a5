"""The probe entry point on the tiny config: several encoders side by side, and the shipped
configs load."""

import json
from pathlib import Path

import pytest
import torch

from downstream.probe import EncoderEntry, ProbeConfig, load_encoder, main, object_source
from ocl.config_loading import load_config
from ocl.modeling import SmoothSAModel
from tasks.slots import SlotProvenance, SlotShardWriter, SlotSpec
from tests.downstream.probe_setting import encode_directly
from tests.ocl.tiny import tiny_config
from tests.tasks.clevrer_directory import make_clevrer_directory

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "probe"


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A tiny CLEVRER directory and two saved encoders (with and without the preheater)."""
    root = tmp_path_factory.mktemp("probe-cli")
    make_clevrer_directory(root / "clevrer", num_frames=4)
    for name, preheater in (("smoothsa", True), ("no-preheater", False)):
        torch.manual_seed(1)
        SmoothSAModel(tiny_config(use_preheater=preheater)).save_pretrained(root / name)
    return root


def arguments(root: Path, output: str, encoders: str, *more: str) -> list[str]:
    return ["--config", str(CONFIGS / "tiny.yaml"), f"data.root={root / 'clevrer'}",
            f"data.cache_dir={root / 'cache'}", f"output_dir={root / output}",
            f"encoders={encoders}", "matching.threshold=0", *more]  # random tiny encoders


def test_table_of_several_encoders(setting, capsys):
    encoders = (f"[{{path: {setting / 'smoothsa'}}}, "
                f"{{path: {setting / 'smoothsa'}, random_init: true, seed: 3}}, "
                f"{{name: without-preheater, path: {setting / 'no-preheater'}}}]")
    columns = main(arguments(setting, "table", encoders))
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "smoothsa", "smoothsa-random", "without-preheater"]
    for row in ("objects", "matched", "official/top1", "official/top3", "official/box_iou",
                "color/linear/accuracy", "shape/mlp/accuracy", "material/majority/accuracy",
                "position/linear/r2", "position/mlp/r2", "moving/linear/accuracy"):
        assert any(line.startswith(row + " ") for line in printed.splitlines()), row
    saved = json.loads((setting / "table" / "metrics.json").read_text())
    assert saved.keys() == columns.keys() and len(saved) == 3
    assert all(metrics.keys() == saved["smoothsa"].keys() for metrics in saved.values())
    # 3 videos of 2, 3, 2 objects and 2 of 3, 2 objects, every object visible in all 4 frames
    assert saved["smoothsa"]["objects"] == 4 * 5
    assert all(0 < metrics["matched"] <= 20 for metrics in saved.values())
    assert (setting / "table" / "config.yaml").is_file()


def test_stored_slots_give_the_same_table_as_the_encoder(setting):
    encoder = load_encoder(EncoderEntry(path=str(setting / "smoothsa")))
    folder = setting / "slots"
    spec = SlotSpec(num_slots=4, slot_dim=32, dtype="float32", mask_size=encoder.grid)
    config = load_config(ProbeConfig, CONFIGS / "tiny.yaml", [
        f"data.root={setting / 'clevrer'}", f"data.cache_dir={setting / 'cache'}",
        f"encoders=[{{path: {setting / 'smoothsa'}}}]"])
    for training, split in ((True, "train"), (False, "validation")):
        with SlotShardWriter(folder, spec, SlotProvenance("tiny", "hash", 1), split) as writer:
            for sample in object_source(config.data, training):
                slots, attention = encode_directly(encoder, sample)
                writer.write(sample.sample_id, slots.numpy(), attention.numpy())
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/train-*.parquet\n"
        "  - split: validation\n    path: data/validation-*.parquet\n---\n")
    stored = main(arguments(setting, "stored", f"[{{name: tiny, path: {folder}}}]",
                            "data.source=slot_dataset"))
    direct = main(arguments(setting, "direct", f"[{{name: tiny, path: {setting / 'smoothsa'}}}]"))
    # The stored slots equal the encoder's up to float rounding, which the probes' optimisers
    # carry into the 5th digit at most.
    assert stored["tiny"] == pytest.approx(direct["tiny"], rel=1e-4, nan_ok=True)


def test_random_init_is_seeded_and_differs_from_the_trained_weights(setting):
    trained = load_encoder(EncoderEntry(path=str(setting / "smoothsa")))
    first, second = (load_encoder(EncoderEntry(path=str(setting / "smoothsa"), random_init=True,
                                               seed=5)) for _ in range(2))
    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                     b.state_dict().values(), strict=True))

    assert same(first, second) and not same(trained, first)

def test_shipped_configs_load():
    config = load_config(ProbeConfig, CONFIGS / "clevrer_sim.yaml")
    assert [entry.title for entry in config.encoders] == ["trained", "random", "no-preheater"]
    assert config.encoders[1].random_init and config.matching.threshold == 0.1
    with pytest.raises(ValueError, match="no encoders"):
        load_config(ProbeConfig, CONFIGS / "tiny.yaml")
    with pytest.raises(ValueError, match="coco_train_annotations"):
        load_config(ProbeConfig, CONFIGS / "tiny.yaml",
                    ["data.source=coco", "encoders=[{path: x}]"])
