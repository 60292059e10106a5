"""The data of the built-in default run (`accelerate launch downstream/vqa.py`, no arguments),
each part made once into a cache folder: a small CLEVRER-sim set (`python -m tasks.clevrer_sim`),
then its slots by the small SmoothSA encoder the encoder training ships
(`downstream.extract.extract_slots`). The run then trains the reasoner on them as on any data.
"""

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tasks.clevrer_layout import SPLITS

REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass
class PrepareConfig:
    """The built-in default's data, made once into `cache_dir` before training (when `enabled`).

    videos, frames, size, seed: the CLEVRER-sim set (`python -m tasks.clevrer_sim`).
    encoder: the small SmoothSA encoder (folder) whose slots the reasoner reads.
    """

    enabled: bool = False
    cache_dir: str = ".cache/vqa-default"
    videos: int = 300
    frames: int = 32
    size: int = 64
    seed: int = 0
    encoder: str = "models/clevrer_sim_small"


class MissingPieceError(RuntimeError):
    """The built-in default needs a part of the project that this checkout does not have."""


def prepare_default_data(prepare: PrepareConfig) -> tuple[Path, Path]:
    """The built-in default's data, each part made once into `prepare.cache_dir`: a CLEVRER-sim
    set (`python -m tasks.clevrer_sim`), then its slots by the small encoder
    (`downstream.extract.extract_slots`). Returns (CLEVRER directory, slot dataset folder)."""
    cache = Path(prepare.cache_dir).expanduser()
    name = f"{prepare.videos}v-{prepare.frames}f-{prepare.size}px-seed{prepare.seed}"
    clevrer_root, slots = cache / f"clevrer-sim-{name}", cache / f"slots-{name}"
    missing = []
    if importlib.util.find_spec("tasks.clevrer_sim") is None:
        missing.append("the CLEVRER-sim generator (tasks/clevrer_sim)")
    if importlib.util.find_spec("downstream.extract") is None:
        missing.append("slot extraction (downstream/extract.py, extract_slots)")
    if not Path(prepare.encoder).exists():
        missing.append(f"the small SmoothSA encoder at {prepare.encoder} (prepare.encoder)")
    if missing:
        raise MissingPieceError(
            "the built-in default run needs " + "; ".join(missing) + ". Until they are in this "
            "checkout, run on your own data: --config configs/vqa/<name>.yaml "
            "data.clevrer_root=... data.slots=..."
        )
    if not (clevrer_root / "questions" / "train.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "tasks.clevrer_sim", "--out", str(clevrer_root),
             "--videos", str(prepare.videos), "--frames", str(prepare.frames),
             "--size", str(prepare.size), "--seed", str(prepare.seed)],
            cwd=REPOSITORY, check=True,
        )
    if not (slots / "README.md").is_file():
        from downstream.extract import extract_slots

        extract_slots(encoder=prepare.encoder, clevrer_root=clevrer_root, output=slots,
                      splits=SPLITS)
    return clevrer_root, slots
