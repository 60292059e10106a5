"""Typed experiment configs from YAML files plus dotted command-line overrides.

Every entry point takes `--config FILE` and overrides like `optim.max_steps=500`. A config is a
dataclass; the YAML may set any subset of its fields; unknown keys and wrong types are errors
naming the key. YAML holds numbers and names only: nothing in it is evaluated.
"""

import argparse
from dataclasses import is_dataclass
from pathlib import Path
from typing import TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

Config = TypeVar("Config")


def load_config(
    config_type: type[Config], path: str | Path | None = None, overrides: list[str] = ()
) -> Config:
    """The dataclass `config_type` with fields from `path` (YAML) and then `overrides`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: a key is unknown, a value has the wrong type, or `__post_init__` refuses it.
    """
    if not is_dataclass(config_type):
        raise TypeError(f"{config_type} is not a dataclass")
    schema = OmegaConf.structured(config_type)
    try:
        layers = [schema]
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"no config file at {path}")
            layers.append(OmegaConf.load(path))
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*layers)
        return OmegaConf.to_object(merged)
    except (OmegaConfBaseException, TypeError) as error:
        where = f" in {path}" if path is not None else ""
        raise ValueError(f"bad config{where}: {error}") from None


def config_to_yaml(config) -> str:
    """The YAML text of a config dataclass, as saved beside checkpoints."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def parse_config_arguments(
    config_type: type[Config], description: str, argv: list[str] | None = None,
    default_config: str | None = None,
) -> Config:
    """`--config FILE` plus `key=value` overrides from the command line, as `config_type`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=default_config, help="YAML experiment config")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.max_steps=500")
    args = parser.parse_args(argv)
    return load_config(config_type, args.config, args.overrides)


def flat_settings(values: dict, separator: str = ".", prefix: str = "") -> dict:
    """Nested settings (e.g. `dataclasses.asdict` of a config) flattened to `section.key` names
    (joined by `separator`)."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flat_settings(value, separator, f"{prefix}{key}{separator}"))
        else:
            flat[prefix + key] = value
    return flat
