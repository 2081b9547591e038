"""Copies of router_small_m_ext's kernel source (gemmbench/backends/ext/router_small_m.cu, edited) against
each other on one machine start: each built as its own module, checked against float64, then timed in
interleaved rounds (cold L2, CUDA-graph device time, the sweep's timer) on the routers at the token
counts given, with and without PDL, beside mm_out_dtype. For edits whose effect is smaller than the
spread between starts of the machine.

Usage: python research/experiments/router_ext_ab.py OUT_DIR A.cu B.cu ... [--m 1,2] [--rounds 3]
Writes OUT_DIR/router_ext_ab.md (each figure the median of the rounds) and prints it last.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gemmbench.backends import REGISTRY
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing import timers
from gemmbench.timing.inputs import input_copies, reference, relative_error, rotating

SHAPES = {"DeepSeek-V3": (256, 7168), "GLM-5": (256, 6144), "V4-Flash": (256, 4096), "V4 indexer": (64, 7168)}
EXT_DIR = Path(__file__).resolve().parents[2] / "gemmbench" / "backends" / "ext"
# A copy whose output strays further from float64 than this is reported wrong, not timed.
WRONG_REL_ERR = 1e-6
BINDING = """#include "{source}"
#include <torch/extension.h>
void run(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, bool pdl) {{
  launch_router_small_m(x, w, out, pdl);
}}
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {{ m.def("run", &run); }}
"""


def build(index: int, source: Path):
    from torch.utils.cpp_extension import load

    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    folder = Path(tempfile.mkdtemp())
    binding = folder / "binding.cu"
    binding.write_text(BINDING.format(source=source.resolve()))
    return load(
        name=f"router_ext_ab_{index}",
        sources=[str(binding)],
        build_directory=str(folder),
        extra_include_paths=[str(EXT_DIR)],
        extra_cuda_cflags=["-O3"],
        verbose=False,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for router_ext_ab.md")
    parser.add_argument("sources", type=Path, nargs="+", help="copies of router_small_m.cu to compare")
    parser.add_argument("--m", default="1,2", help="token counts, comma-separated (default 1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per figure (default 3)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    modules = [build(i, source) for i, source in enumerate(args.sources)]
    print(f"built {len(modules)} in {time.perf_counter() - started:.0f} s", flush=True)
    device = torch.device("cuda")
    bench = Bench(device, MeasureOptions())
    bench.warm_device()

    def timed(calls) -> float:
        call = rotating(calls)
        bench.warm_up(call)
        upper_bound_us = timers.mean_time_us(call, 4 * len(calls))
        unroll = timers.fit_graph_unroll(call, upper_bound_us, multiple_of=len(calls))
        return timers.time_graph(call, bench.options.target, unroll).median_us

    names = [str(source) for source in args.sources]  # as given: two copies may share a file name
    rows = []
    for label, (n, k) in SHAPES.items():
        for m in (int(value) for value in args.m.split(",")):
            case = Case(label, "router", "router", m, n, k)
            copies, _ = input_copies(case, device, seed=0, cold=True)
            samples = {(name, pdl): [] for name in names for pdl in (False, True)}
            wrong = {}
            for name, module in zip(names, modules, strict=True):
                copies[0].out.fill_(float("nan"))
                module.run(copies[0].x, copies[0].w, copies[0].out, False)
                err = relative_error(copies[0].out, reference(copies[0]))
                if not err <= WRONG_REL_ERR:
                    wrong[name] = f"wrong ({err:.1e})"
            for _ in range(args.rounds):
                for name, module in zip(names, modules, strict=True):
                    for pdl in (False, True):
                        if name not in wrong:
                            calls = [functools.partial(module.run, c.x, c.w, c.out, pdl) for c in copies]
                            samples[name, pdl].append(timed(calls))
            mm_out_dtype = timed([REGISTRY["mm_out_dtype"].prepare(case, c) for c in copies])
            figures = [
                wrong.get(name) or f"{statistics.median(samples[name, pdl]):.2f}"
                for name in names
                for pdl in (False, True)
            ]
            rows.append([label, m, *figures, f"{mm_out_dtype:.2f}"])
            print(rows[-1], flush=True)
            del copies
    columns = ["router", "M", *(f"{name}{' +pdl' if pdl else ''}" for name in names for pdl in (False, True))]
    title = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cold L2, CUDA-graph device time µs"
    title += f" (medians of {args.rounds} interleaved rounds)"
    table = f"{title}\n\n" + markdown_table([*columns, "mm_out_dtype"], rows)
    (args.out_dir / "router_ext_ab.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
