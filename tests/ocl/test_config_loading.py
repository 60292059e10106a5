"""Typed configs from YAML and dotted overrides."""

from dataclasses import dataclass, field

import pytest

from ocl.config_loading import config_to_yaml, load_config


@dataclass
class Inner:
    rate: float = 0.1
    names: list[str] = field(default_factory=lambda: ["a"])

    def __post_init__(self):
        if self.rate < 0:
            raise ValueError(f"rate must be >= 0, got {self.rate}")


@dataclass
class Outer:
    steps: int = 10
    inner: Inner = field(default_factory=Inner)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 20\ninner:\n  rate: 0.5\n")
    config = load_config(Outer, path, ["inner.names=[x,y]", "steps=30"])
    assert config == Outer(steps=30, inner=Inner(rate=0.5, names=["x", "y"]))
    assert isinstance(config.inner, Inner)
    assert load_config(Outer, None, []) == Outer()
    assert load_config(Outer, path, []) == load_config(Outer, None, ["steps=20", "inner.rate=0.5"])


def test_round_trip_through_yaml(tmp_path):
    config = Outer(steps=3, inner=Inner(rate=0.25, names=["p"]))
    (tmp_path / "c.yaml").write_text(config_to_yaml(config))
    assert load_config(Outer, tmp_path / "c.yaml") == config


@pytest.mark.parametrize(
    "text,overrides,message",
    [
        ("stepz: 3\n", [], "stepz"),
        ("steps: many\n", [], "steps"),
        ("", ["inner.rate=-1"], "rate must be >= 0"),
        ("", ["inner.missing=1"], "missing"),
        ("", ["inner.names.0.x=1"], "bad config"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, overrides, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(Outer, path, overrides)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.yaml"):
        load_config(Outer, tmp_path / "nothing.yaml")
