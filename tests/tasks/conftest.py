"""Fixtures of the data-layer tests: a tiny CLEVRER directory, a private cache folder, and a
small CLEVRER-sim dataset generated once per test session (CPU, offline, seeded)."""

import shutil
from pathlib import Path

import pytest

from tasks.clevrer_sim.config import SimConfig
from tasks.clevrer_sim.dataset import DatasetSummary, generate_dataset
from tests.tasks.clevrer_directory import ClevrerDirectory, make_clevrer_directory

SMALL = SimConfig(num_videos=6, num_frames=40, future_frames=24, width=64, height=64, seed=0)
"""6 videos (train 0–2, validation 3–4, test 5) of 40 frames at 64×64."""


@pytest.fixture(scope="session")
def pristine_clevrer(tmp_path_factory) -> ClevrerDirectory:
    """Written once per session; tests that damage files use `clevrer`, a copy."""
    return make_clevrer_directory(tmp_path_factory.mktemp("clevrer-pristine"))


@pytest.fixture
def clevrer(pristine_clevrer: ClevrerDirectory, tmp_path: Path) -> ClevrerDirectory:
    """A private copy of the tiny CLEVRER directory that a test may damage."""
    root = tmp_path / "clevrer"
    shutil.copytree(pristine_clevrer.root, root)
    copy = ClevrerDirectory(root, pristine_clevrer.splits, pristine_clevrer.num_frames,
                            pristine_clevrer.image_size)
    copy.objects = pristine_clevrer.objects
    return copy


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DatasetSummary]:
    root = tmp_path_factory.mktemp("clevrer_sim_small")
    summary = generate_dataset(SMALL, root, workers=1, progress=False)
    return root, summary
