"""Export the encoder of a training checkpoint with `save_pretrained`, e.g. from a run still going.

    python -m ocl.checkpoint_export runs/clevrer_sim_small --checkpoint last --out models/x
"""

import argparse
import os
import shutil
from pathlib import Path

import torch

from ocl.config_loading import load_config
from ocl.configuration import SmoothSAConfig
from ocl.modeling import SmoothSAModel
from ocl.training_config import EncoderTrainingConfig

PREFIX = "model."


def export_checkpoint(run: str | Path, checkpoint: str, out: str | Path) -> SmoothSAModel:
    """Writes the encoder of `run/checkpoints/{checkpoint}.ckpt` to `out` (via a temporary
    folder); the run's `config.yaml` gives the architecture. Returns the encoder."""
    run, out = Path(run), Path(out)
    path = run / "checkpoints" / f"{checkpoint}.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint {path}")
    config = load_config(EncoderTrainingConfig, run / "config.yaml")
    model = SmoothSAModel(SmoothSAConfig(**config.model))
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    weights = {key.removeprefix(PREFIX): value for key, value in state.items()
               if key.startswith(PREFIX)}
    model.load_state_dict(weights)
    save_encoder(model, out)
    return model


def save_encoder(model: SmoothSAModel, out: Path) -> None:
    """`save_pretrained` into `out` through a temporary folder: `out` is whole or absent."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="the training run's output_dir")
    parser.add_argument("--checkpoint", default="last", help="checkpoint name without .ckpt")
    parser.add_argument("--out", required=True, help="folder for save_pretrained")
    args = parser.parse_args(argv)
    export_checkpoint(args.run, args.checkpoint, args.out)
    print(f"encoder of {args.run}/checkpoints/{args.checkpoint}.ckpt saved to {args.out}")


if __name__ == "__main__":
    main()
