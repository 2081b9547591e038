import os

from conftest import copy_users_extension_build

from gemmbench.backends import ext
from gemmbench.cache import CACHE_ENV, cache_root


def test_the_test_session_uses_a_private_cache(tmp_path_factory):
    assert os.environ[CACHE_ENV] and str(cache_root()).startswith(str(tmp_path_factory.getbasetemp()))


def test_the_session_copies_the_users_extension_build_for_this_key_only(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "user"))
    users_library = ext.library_path()
    copy_users_extension_build(users_library)  # the user has not built it: nothing to copy
    assert not (tmp_path / "user").exists()
    users_library.parent.mkdir(parents=True)
    users_library.write_bytes(b"\x7fELF")
    (users_library.parent.parent / "0123456789abcdef").mkdir()  # a build for other sources, torch or GPUs
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "session"))
    copy_users_extension_build(users_library)
    assert ext.library_path().read_bytes() == b"\x7fELF" and not ext.library_path().is_symlink()
    assert [p.name for p in (tmp_path / "session" / "ext").iterdir()] == [ext.build_key()]
    assert users_library.read_bytes() == b"\x7fELF"


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "gemmbench"


def test_a_torn_cache_file_is_reported_and_rebuilt(monkeypatch, tmp_path):
    from gemmbench.cache import read_json_cache, write_json_cache

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert read_json_cache("tuning.json") == ({}, None)  # no file yet: nothing wrong
    (tmp_path / "tuning.json").write_text('{"a": {"block_n": 1')  # cut short by a crash
    cached, problem = read_json_cache("tuning.json")
    assert cached == {} and "tuning.json is not a JSON object (torn or not gemmbench's): it is rebuilt" in problem
    (tmp_path / "tuning.json").write_text("[1, 2]")  # JSON, but not gemmbench's
    assert read_json_cache("tuning.json")[1] is not None
    write_json_cache("tuning.json", {"b": 2})
    assert read_json_cache("tuning.json") == ({"b": 2}, None)
