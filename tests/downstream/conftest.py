"""Fixtures of the head tests."""

import pytest

from tests.downstream.vqa_files import VqaFiles, make_vqa_files


@pytest.fixture(scope="session")
def vqa_files(tmp_path_factory) -> VqaFiles:
    """A tiny CLEVRER directory and a slot dataset of its splits, written once."""
    return make_vqa_files(tmp_path_factory.mktemp("vqa"))
