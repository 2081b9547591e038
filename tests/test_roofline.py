import json

import pytest
import torch

from gemmbench.measure import roofline
from gemmbench.measure.roofline import Roofline
from gemmbench.spec.cases import Case


def test_floor_is_the_larger_of_memory_and_compute_time():
    roof = Roofline(bandwidth_gbps=3000.0, bf16_tflops=800.0, measured="2026-11-28")
    router = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
    assert roof.floor_us(router) == pytest.approx(router.bytes_moved / 3e6)  # ~1.2 us: memory-bound
    square = Case("x", "square", "custom", 8192, 8192, 8192)
    assert roof.floor_us(square) == pytest.approx(2 * 8192**3 / 800e6)  # compute-bound


def test_no_roofline_on_the_cpu():
    assert roofline.for_device(torch.device("cpu")) is None


def test_cached_figures_are_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMMBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(roofline, "cache_key", lambda device: "GPU X")
    calls = []
    monkeypatch.setattr(roofline, "measure", lambda device: calls.append(1) or Roofline(1000.0, 500.0, "now"))
    cuda = torch.device("cuda")
    first, second = roofline.for_device(cuda), roofline.for_device(cuda)
    assert first == second == Roofline(1000.0, 500.0, "now") and len(calls) == 1
    assert json.loads((tmp_path / roofline.CACHE_FILE).read_text())["GPU X"]["bf16_tflops"] == 500.0
    roofline.for_device(cuda, remeasure=True)
    assert len(calls) == 2


def test_the_roofline_is_measured_on_a_warmed_device(monkeypatch):
    calls = []
    monkeypatch.setattr(roofline, "ClockWatch", lambda device: "clocks")
    monkeypatch.setattr(roofline, "warm_device", lambda device, clocks: calls.append("warm"))
    monkeypatch.setattr(roofline, "_copy_gbps", lambda device: calls.append("copy") or 3000.0)
    monkeypatch.setattr(roofline, "_matmul_tflops", lambda device: calls.append("matmul") or 700.0)
    monkeypatch.setattr(roofline.torch.cuda, "empty_cache", lambda: None)
    measured = roofline.measure(torch.device("cuda"))
    assert calls == ["warm", "copy", "matmul"] and measured.bandwidth_gbps == 3000.0


def test_a_torn_roofline_cache_is_reported_and_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMMBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(roofline, "cache_key", lambda device: "GPU X")
    monkeypatch.setattr(roofline, "measure", lambda device: Roofline(1000.0, 500.0, "now"))
    (tmp_path / roofline.CACHE_FILE).write_text('{"GPU X": {"bandwidth')
    warnings = []
    assert roofline.for_device(torch.device("cuda"), warn=warnings.append) == Roofline(1000.0, 500.0, "now")
    (warning,) = warnings
    assert "is not a JSON object" in warning and "rebuilt" in warning
    assert json.loads((tmp_path / roofline.CACHE_FILE).read_text())["GPU X"]["bf16_tflops"] == 500.0
