"""Fixtures of the data-layer tests: a tiny CLEVRER directory and a private cache folder."""

import shutil
from pathlib import Path

import pytest

from tests.tasks.clevrer_directory import ClevrerDirectory, make_clevrer_directory


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
