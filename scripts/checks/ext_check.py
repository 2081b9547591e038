"""GPU check for the cuBLAS extension: is cublas_ext bit-identical to torch.mm(out_dtype=), on the same
GEMM kernel? Prints a Markdown table (docs/cublas_ext.md holds one).

Usage: python scripts/checks/ext_check.py
"""

import argparse

import torch

from gemmbench.analysis.decode import gemm_kernel
from gemmbench.backends import REGISTRY, ext
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.tuning import CaseTimer
from gemmbench.output.format import markdown_table
from gemmbench.spec.presets import load_preset
from gemmbench.timing import profile
from gemmbench.timing.inputs import make_inputs

M_VALUES = (1, 16, 128, 1024, 4096)
COMPARED = ("cublas_ext", "cublaslt_ext", "cublaslt_tuned_ext")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parse_args(argv)
    ext.load()
    device = torch.device("cuda")
    bench = Bench(device, MeasureOptions())
    gemms = load_preset("deepseek-v3").gemms + load_preset("deepseek-v4-pro").gemms
    rows = []
    for gemm in gemms:
        for m in M_VALUES:
            case = gemm.case(m)
            inputs = make_inputs(case, device, seed=0)
            outputs, kernels = {}, {}
            for name in ("mm_out_dtype", *COMPARED):
                REGISTRY[name].tune(case, inputs, CaseTimer(case, bench))  # as a sweep does first
                call = REGISTRY[name].prepare(case, inputs)
                inputs.out.fill_(float("nan"))
                call()
                outputs[name] = inputs.out.clone()
                trace = profile.capture_kernels(call, device)
                kernels[name] = gemm_kernel([k.name for k in trace.kernels]) or "?"
            base = outputs["mm_out_dtype"]
            cells = [f"{case.model} {case.gemm}", str(m), str(case.n), str(case.k), f"`{kernels['mm_out_dtype']}`"]
            for name in COMPARED:
                diff = ((outputs[name] - base).norm() / base.norm()).item()
                same = "same kernel" if kernels[name] == kernels["mm_out_dtype"] else f"`{kernels[name]}`"
                cells.append(f"{diff:.1e}, {same}")
            rows.append(cells)
    header = ["GEMM", "M", "N", "K", "mm_out_dtype kernel", *(f"{n}: rel. diff, kernel" for n in COMPARED)]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
