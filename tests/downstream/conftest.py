"""Fixtures of the head tests."""

import pytest
import torch

from tests.downstream.vqa_files import VqaFiles, make_vqa_files

# one thread: the tiny models gain nothing from more, and the threads of several test processes
# on a shared machine slow each other down many times over
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def vqa_files(tmp_path_factory) -> VqaFiles:
    """A tiny CLEVRER directory and a slot dataset of its splits, written once."""
    return make_vqa_files(tmp_path_factory.mktemp("vqa"))
