"""An independent check of gemmbench's layer times (a producer writing x, then the router GEMM on x; us per layer).

For each layer point of a gemmbench run file (schema 2: rows with status ok and a context) it builds the layers
again with torch, the extension's compiled ops and flashinfer only (no gemmbench measurement code): L layers, the
row's l2_copies, each its own hidden state (and residual), norm weight, GEMM weight [N, K] bf16 and fp32 output
[M, N], random normal. One layer is checked against float64; then a CUDA graph of R passes over the layers (a
replay of about 1 ms) is captured, replayed once, and timed: BATCHES batches of BATCH_REPLAYS replays between two
CUDA events, us per layer = elapsed / (BATCH_REPLAYS * R * L), the median over batches, against device_median_us.
Right before the batches the GPU runs square bf16 matmuls for LOAD_S, as gemmbench's measurement rule loads it
before each point (docs/measurement.md): without a load, a point lands in one of two states about 10% apart.
A point takes about 0.2-0.5 s (150 replays of >= 1 ms, two captures, the allocation); the first use of the
extension or of a flashinfer kernel compiles it first (tens of seconds).

flashinfer 0.7.2.post1's calls (flashinfer/norm/__init__.py, flashinfer/gemm/routergemm.py), as used here:
  flashinfer.norm.rmsnorm(h, g, eps, out=x, enable_pdl=pdl)
  flashinfer.norm.fused_add_rmsnorm(x, residual, g, eps, enable_pdl=pdl): residual += x; x = norm(residual) * g,
    in place (x is h once, before the check); both norms run CuTe DSL kernels where nvidia-cutlass-dsl imports
  flashinfer.gemm.mm_M1_16_K{K}_N{N}(x, w.t(), out, launch_with_pdl=pdl): mat_b [K, N] column-major, out fp32

Usage: python scripts/checks/layer_check.py RUN_FILE OUT_DIR [--points N] [--dry-run]   (on a GPU machine)
Exit status: 0 every compared point within 5%; 1 one is not, or wrong, failed, none compared; 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

# Replays per timed batch, batches, and passes over the layers per graph so that a replay takes about a
# millisecond: enough that event resolution and launch costs are small beside it.
BATCH_REPLAYS, BATCHES, TARGET_REPLAY_US = 5, 30, 1000.0
# The load before timing: matmuls of this side for this long (gemmbench's rule: 30 ms of 4096-square bf16).
LOAD_SIZE, LOAD_S = 4096, 0.03
EPS = 1e-6  # rms_norm_eps of the DeepSeek-V3/V4, Kimi-K2 and GLM configs, as gemmbench's producers use
WEIGHT_SPREAD = 0.1  # norm weights 1 + 0.1 * randn: around 1 as a trained gain, never exactly 1
AGREEMENT = 0.05  # the bar: within 5% of gemmbench at every point
GEMM_TOLERANCE = 1e-3  # out against the float64 product of the x the GEMM read (fp32 accumulation)
NORM_TOLERANCE = 1e-2  # x against a float64 norm of its input: x is rounded to bf16 (relative steps of 2^-8)
MIN_SCHEMA = 2  # before schema 2 a context row's device_median_us was the GEMM alone, not the layer
PDL_NORMS = {"gemmbench_norm_pdl_start": 1, "gemmbench_norm_pdl_after_stores": 2}  # rms_norm_out's trigger
FI_NORMS = {"flashinfer_rmsnorm": False, "flashinfer_rmsnorm_pdl": True}  # enable_pdl
FI_FUSED = {"flashinfer_fused_add_rmsnorm": False, "flashinfer_fused_add_rmsnorm_pdl": True}
CONTEXTS = {"norm", "copy", *PDL_NORMS, *FI_NORMS, *FI_FUSED}
EXT_OPS = {"router_small_m_ext": "router_small_m_out", "router_small_m_mma": "router_small_m_mma_out"}
BACKENDS = {"mm_out_dtype", "flashinfer_router_gemm", *EXT_OPS}
# flashinfer's router GEMMs with fp32 output, by (K, N), for M <= 16.
FI_ROUTER = {(7168, 256): "K7168_N256", (7168, 384): "K7168_N384", (6144, 256): "K6144_N256", (7168, 896): "K7168_N896"}
FI_MAX_M = 16
KEY = ("model", "n", "k", "m", "backend", "pdl", "context")  # a point; repeated rows of one are read once


class BadInput(Exception):
    pass


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_file", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--points", type=int, help="time at most N points, sampled evenly (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="list the points it would time; no CUDA")
    args = parser.parse_args(argv)
    if args.points is not None and args.points < 1:
        parser.error("--points must be at least 1")
    return args


def load_points(path: Path, count: int | None) -> list[dict]:
    """The run file's layer rows, one per point, in file order; at most `count`, sampled evenly."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # no file, unreadable, not UTF-8 or not JSON
        raise BadInput(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != "gemmbench.run" or not isinstance(doc.get("records"), list):
        raise BadInput(f"{path}: not a gemmbench run file (schema 'gemmbench.run' with records)")
    if not isinstance(version := doc.get("schema_version"), int) or version < MIN_SCHEMA:
        raise BadInput(f"{path}: schema_version {version!r}; its layer times need {MIN_SCHEMA} or later")
    points: dict[tuple, dict] = {}
    for row in doc["records"]:
        if isinstance(row, dict) and row.get("status") == "ok" and row.get("context") not in (None, "none"):
            points.setdefault(tuple(str(row.get(f)) for f in KEY), row)
    if not points:
        raise BadInput(f"{path}: no layer rows (status ok with a context)")
    rows = list(points.values())
    if count is None or count >= len(rows):
        return rows
    return [rows[round(i * (len(rows) - 1) / max(1, count - 1))] for i in range(count)]


def fi(module: str):
    return importlib.import_module(f"flashinfer.{module}")


def problem(row: dict, load: bool) -> str | None:
    """Why this script cannot time the point, or None; `load`: import its ops too (flashinfer, the extension)."""
    m, n, k, context, backend = (row.get(f) for f in ("m", "n", "k", "context", "backend"))
    if context not in CONTEXTS or backend not in BACKENDS:
        return f"unknown context {context!r}" if context not in CONTEXTS else f"unknown backend {backend!r}"
    if not all(isinstance(row.get(f), int) and row[f] > 0 for f in ("m", "n", "k", "l2_copies")):
        return "m, n, k or l2_copies missing"
    if (row.get("in_dtype"), row.get("out_dtype")) != ("bf16", "fp32"):
        return f"{row.get('in_dtype')} -> {row.get('out_dtype')}: this check times bf16 -> fp32 only"
    if not isinstance(row.get("device_median_us"), (int, float)):
        return "no device time in the run file"
    if backend == "flashinfer_router_gemm" and ((k, n) not in FI_ROUTER or m > FI_MAX_M):
        return f"flashinfer has no fp32 router GEMM for M {m}, K {k}, N {n}"
    if backend == "flashinfer_router_gemm" or context in {**FI_NORMS, **FI_FUSED}:
        if importlib.util.find_spec("flashinfer") is None:
            return "flashinfer is not installed"
        try:
            for module in ("norm", "gemm") if load else ():
                fi(module)
        except Exception as exc:  # any failure of a third-party import is the point's skip reason
            return f"flashinfer does not import: {exc}"
    if load and (needed := [op for op in (EXT_OPS.get(backend), context in PDL_NORMS and "rms_norm_out") if op]):
        from gemmbench.backends import ext  # the compiled extension, not measurement code

        if reason := ext.ensure_loaded():
            return reason
        if missing := [op for op in needed if not hasattr(torch.ops.gemmbench, op)]:
            return f"the extension was built without {', '.join(missing)}"
    return None


def produce(t: SimpleNamespace, context: str) -> torch.Tensor:
    """Writes layer t's x (its own buffer, or a new tensor for F.rms_norm) and returns it."""
    if context == "norm":
        return F.rms_norm(t.h, (t.h.shape[1],), t.g, EPS)
    if context == "copy":
        return t.x.copy_(t.h)
    if context in PDL_NORMS:
        torch.ops.gemmbench.rms_norm_out(t.h, t.g, EPS, t.x, PDL_NORMS[context])
    elif context in FI_NORMS:
        fi("norm").rmsnorm(t.h, t.g, EPS, out=t.x, enable_pdl=FI_NORMS[context])
    else:  # in place: residual += x, then x = norm(residual) * g
        fi("norm").fused_add_rmsnorm(t.x, t.r, t.g, EPS, enable_pdl=FI_FUSED[context])
    return t.x


def gemm(x: torch.Tensor, t: SimpleNamespace, backend: str, pdl: bool) -> None:
    """Writes layer t's out [M, N] fp32 from x [M, K] and its weight w [N, K]."""
    if backend == "mm_out_dtype":
        torch.mm(x, t.w.t(), out_dtype=torch.float32, out=t.out)
    elif backend == "router_small_m_ext":
        torch.ops.gemmbench.router_small_m_out(x, t.w, t.out, pdl)
    elif backend == "router_small_m_mma":
        torch.ops.gemmbench.router_small_m_mma_out(x, t.w, t.out, pdl, 0, 0)
    else:  # mat_b: w.t(), the [K, N] column-major view it takes
        kernel = getattr(fi("gemm"), f"mm_M1_16_{FI_ROUTER[x.shape[1], t.w.shape[0]]}")
        kernel(x, t.w.t(), t.out, launch_with_pdl=pdl)


def new_layer(row: dict, generator: torch.Generator) -> SimpleNamespace:
    m, n, k, fused = row["m"], row["n"], row["k"], row["context"] in FI_FUSED

    def randn(*shape):
        return torch.randn(*shape, device="cuda", dtype=torch.bfloat16, generator=generator)

    h, w, r = randn(m, k), randn(n, k), randn(m, k) if fused else None
    g = (1 + WEIGHT_SPREAD * torch.randn(k, device="cuda", generator=generator)).to(torch.bfloat16)
    x = h.clone() if fused else torch.empty_like(h)  # the fused norm works in place on x: h, once
    return SimpleNamespace(h=h, g=g, w=w, r=r, x=x, out=torch.empty(m, n, device="cuda"))


def checked(t: SimpleNamespace, context: str, backend: str, pdl: bool) -> tuple[float, float]:
    """One layer against float64: x's relative error against the norm of its input, out's against x @ w.T."""
    source = t.h.double() if t.r is None else t.x.double() + t.r.double()
    t.out.fill_(float("nan"))  # a GEMM that does not write all of out fails
    x = produce(t, context)
    gemm(x, t, backend, pdl)
    want_x = source
    if context != "copy":
        want_x = source * torch.rsqrt(source.square().mean(-1, keepdim=True) + EPS) * t.g.double()
    want_out = x.double() @ t.w.double().t()
    return tuple(((got.double() - want).norm() / want.norm()).item() for got, want in ((x, want_x), (t.out, want_out)))


def graph_of(calls, passes: int) -> torch.cuda.CUDAGraph:
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(passes):
            for call in calls:
                call()
    graph.replay()  # the upload
    torch.cuda.synchronize()
    return graph


def replay_us(graph: torch.cuda.CUDAGraph) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(BATCH_REPLAYS):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / BATCH_REPLAYS


def load_gpu() -> None:
    a = torch.randn(LOAD_SIZE, LOAD_SIZE, device="cuda", dtype=torch.bfloat16)
    deadline = time.perf_counter() + LOAD_S
    while True:
        a @ a
        torch.cuda.synchronize()
        if time.perf_counter() >= deadline:
            return


def measure(row: dict) -> dict:
    generator = torch.Generator(device="cuda").manual_seed(0)
    layers = [new_layer(row, generator) for _ in range(row["l2_copies"])]
    context, backend, pdl = row["context"], row["backend"], bool(row["pdl"])
    x_err, out_err = checked(layers[0], context, backend, pdl)
    found = {"x_rel_err": x_err, "out_rel_err": out_err}
    if not (x_err < NORM_TOLERANCE and out_err < GEMM_TOLERANCE):  # NaN fails too
        return found | {"wrong": f"rel err x {x_err:.2e}, out {out_err:.2e} (bars {NORM_TOLERANCE}, {GEMM_TOLERANCE})"}

    def layer(t):
        return lambda: gemm(produce(t, context), t, backend, pdl)

    calls = [layer(t) for t in layers]
    for call in calls:  # eager warm-up: JIT builds, cuBLAS handles and workspaces before the capture
        call()
    one_pass = graph_of(calls, 1)
    passes = max(1, round(TARGET_REPLAY_US / min(replay_us(one_pass) for _ in range(3))))
    del one_pass
    graph = graph_of(calls, passes)
    load_gpu()
    mine = statistics.median(replay_us(graph) / (passes * len(calls)) for _ in range(BATCHES))
    ratio = mine / row["device_median_us"]
    return found | {"passes": passes, "script_median_us": mine, "ratio": ratio, "within": abs(ratio - 1) <= AGREEMENT}


def entry_of(row: dict) -> dict:
    entry = {f: row.get(f) for f in ("model", "gemm", "n", "k", "m", "backend", "pdl", "context", "l2_copies")}
    entry |= {f"gemmbench_{f}": row.get(f"device_{f}") for f in ("median_us", "ci_low_us", "ci_high_us")}
    name, label = row.get("model") or f"{row.get('n')}x{row.get('k')}", f"{row.get('backend')}"
    label += "+pdl" if row.get("pdl") else ""
    return entry | {"name": name, "label": label, "point": f"{name} M={row.get('m')} {row.get('context')} {label}"}


def table_line(e: dict) -> str:
    theirs = "-" if e["gemmbench_median_us"] is None else f"{e['gemmbench_median_us']:.2f}"
    mine = f"{e['script_median_us']:.2f} | {e['ratio']:.3f}" if "script_median_us" in e else None
    why = e.get("skipped") or e.get("wrong") or e.get("error") or f"to time, {e['l2_copies']} layers"
    return f"| {e['name']} | {e['m']} | {e['context']} | {e['label']} | {theirs} | {mine or why + ' |'} |"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        points = load_points(args.run_file, args.points)
    except BadInput as exc:
        print(f"layer_check: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        print("layer_check: needs a CUDA GPU (--dry-run lists the points without one)", file=sys.stderr)
        return 2
    entries = []
    for row in points:
        entries.append(entry := entry_of(row))
        try:
            if reason := problem(row, load=not args.dry_run):
                entry["skipped"] = reason
            elif not args.dry_run:
                entry |= measure(row)
        except Exception as exc:  # one point's failure (a kernel's own checks, memory) is reported, not fatal
            entry["error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        if not args.dry_run:
            torch.cuda.empty_cache()  # the point's layers and graphs are gone: give their memory back
    if not args.dry_run:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        doc = {"run_file": str(args.run_file), "device": torch.cuda.get_device_name(), "torch": torch.__version__}
        (args.out_dir / "layer_check.json").write_text(json.dumps(doc | {"points": entries}, indent=1))
    print("| model | M | context | backend | gemmbench us | script us | ratio |\n|---|---|---|---|---|---|---|")
    print("\n".join(table_line(e) for e in entries))
    compared = [e for e in entries if "script_median_us" in e]
    failed, skipped = sum("wrong" in e or "error" in e for e in entries), sum("skipped" in e for e in entries)
    if args.dry_run:
        print(f"dry run: {len(entries) - skipped} of {len(entries)} points to time, {skipped} skipped")
        return 0
    within = sum(e["within"] for e in compared)
    worst = max(compared, key=lambda e: abs(e["ratio"] - 1), default=None)
    at = f" (worst {abs(worst['ratio'] - 1):.1%} at {worst['point']})" if worst else ""
    print(f"{within} of {len(compared)} points within {AGREEMENT:.0%}{at}; {failed} wrong or failed, {skipped} skipped")
    return 0 if compared and within == len(compared) and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
