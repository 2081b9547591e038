import pytest
import torch

from gemmbench.shapes import Case

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def pytest_collection_modifyitems(items):
    """Every test marked `gpu` skips cleanly where CUDA is absent."""
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(needs_cuda)


@pytest.fixture
def small_case() -> Case:
    return Case("custom", "8x16", "custom", 4, 8, 16)
