import os

from gemmbench.cache import CACHE_ENV, cache_root


def test_the_test_session_uses_a_private_cache(tmp_path_factory):
    assert os.environ[CACHE_ENV] and str(cache_root()).startswith(str(tmp_path_factory.getbasetemp()))


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "gemmbench"
