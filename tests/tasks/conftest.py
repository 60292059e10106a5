"""Shared small CLEVRER-sim datasets, generated once per test session (CPU, offline, seeded)."""

from pathlib import Path

import pytest

from tasks.clevrer_sim.config import SimConfig
from tasks.clevrer_sim.dataset import DatasetSummary, generate_dataset

SMALL = SimConfig(num_videos=6, num_frames=40, future_frames=24, width=64, height=64, seed=0)
"""6 videos (train 0–2, validation 3–4, test 5) of 40 frames at 64×64."""


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DatasetSummary]:
    root = tmp_path_factory.mktemp("clevrer_sim_small")
    summary = generate_dataset(SMALL, root, workers=1, progress=False)
    return root, summary
