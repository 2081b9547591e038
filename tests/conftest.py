import os
import shutil
from pathlib import Path

import fakes
import pytest
import torch

from gemmbench import backends
from gemmbench.backends import ext, plugins, registry
from gemmbench.cache import CACHE_ENV
from gemmbench.measure import session
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
    test session (one extension build per session on a GPU machine, none where the user has built it)."""
    saved = os.environ.get(CACHE_ENV)
    users_library = ext.library_path()  # in the user's cache: resolved before the override
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("gemmbench-cache"))
    copy_users_extension_build(users_library)
    yield
    if saved is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = saved


def copy_users_extension_build(users_library: Path) -> None:
    """Copy the user's build of the extension into the session's cache, where `users_library` (its library
    for this build key: these sources, torch, CUDA and GPU architectures) exists: building it takes about
    25 s on a GPU machine. A copy, not a link, so that no test can change the user's cache."""
    if users_library.is_file():
        shutil.copytree(users_library.parent, ext.build_dir(), symlinks=True)


@pytest.fixture
def isolated_registry(monkeypatch) -> None:
    """The built-in backends only, for one test: the backends plugins register in it go with it."""
    monkeypatch.setattr(plugins, "_loaded", {})
    fresh = registry.Registry()
    for module in (registry, plugins, backends):
        monkeypatch.setattr(module, "REGISTRY", fresh)


@pytest.fixture
def fake_device(isolated_registry, monkeypatch):
    """For one test, every session runs on the made-up device (fakes.FakeBench, behind the sessions' one
    bench seam), and the `fake` backend is loaded as the plugin tests/fakes.py."""
    plugins.load_plugins([fakes.__file__], entry_points=False)
    monkeypatch.setattr(session, "SESSION_BENCH", fakes.FakeBench)
