import os

import pytest
import torch

from gemmbench.cache import CACHE_ENV
from gemmbench.spec.cases import Case

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def pytest_collection_modifyitems(items):
    """Every test marked `gpu` skips cleanly where CUDA is absent."""
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(needs_cuda)


@pytest.fixture
def small_case() -> Case:
    return Case("custom", "8x16", "custom", 4, 8, 16)


@pytest.fixture(autouse=True, scope="session")
def private_cache_dir(tmp_path_factory):
    """Tests never write to the user's cache: extension builds and roofline figures go to a folder of the
    test session (one extension build per session on a GPU machine)."""
    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("gemmbench-cache"))
    yield
    if saved is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = saved
