from pathlib import Path

import pytest

from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.output.plot import plot_run
from gemmbench.records.runfile import load_run

RUN = Path(__file__).parent / "fixtures" / "h200_deepseek_v3_cold_a.json"


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_writes_png_and_svg(tmp_path, suffix, magic):
    path = plot_run(load_run(RUN), tmp_path / f"plot{suffix}")
    assert path.read_bytes().startswith(magic)


def test_unknown_format_and_empty_run(tmp_path):
    with pytest.raises(UsageError, match=".png or .svg"):
        plot_run(load_run(RUN), tmp_path / "plot.jpg")
    run = load_run(RUN)
    run.records = [r for r in run.records if r.status != "ok"]
    with pytest.raises(GemmbenchError, match="no timed rows"):
        plot_run(run, tmp_path / "plot.png")
