"""The cuBLAS extension on a GPU: correctness, bit-identity with torch.mm(out_dtype=), clear errors."""

import pytest
import torch

from gemmbench.backends import REGISTRY, ext
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.tuning import CaseTimer
from gemmbench.spec.presets import load_preset
from gemmbench.timing.inputs import make_inputs

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")
CASES = [
    g.case(m) for g in load_preset("deepseek-v3").gemms + load_preset("deepseek-v4-pro").gemms for m in (1, 16, 4096)
]


@pytest.fixture(scope="module", autouse=True)
def loaded():
    ext.load()


def output(backend, case, inputs):
    """The backend's output, tuned first as a sweep does (cublaslt_tuned_ext: its fastest algorithm)."""
    REGISTRY[backend].tune(case, inputs, CaseTimer(case, Bench(CUDA, MeasureOptions())))
    inputs.out.fill_(float("nan"))
    REGISTRY[backend].prepare(case, inputs)()
    return inputs.out.clone()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.model}-{c.gemm}-M{c.m}")
def test_gemm_ex_is_bit_identical_to_mm_out_dtype(case):
    inputs = make_inputs(case, CUDA, seed=3)
    assert torch.equal(output("mm_out_dtype", case, inputs), output("cublas_ext", case, inputs))


@pytest.mark.parametrize("backend", ["cublaslt_ext", "cublaslt_tuned_ext"])
def test_lt_backends_are_fp32_accurate(backend):
    case = CASES[0]
    inputs = make_inputs(case, CUDA, seed=4)
    ref = torch.mm(inputs.x.double(), inputs.w.double().t())
    out = output(backend, case, inputs)
    assert ((out.double() - ref).norm() / ref.norm()).item() < 1e-5


def test_functional_ops_and_graph_capture():
    x = torch.randn(16, 7168, device=CUDA, dtype=torch.bfloat16)
    w = torch.randn(256, 7168, device=CUDA, dtype=torch.bfloat16)
    expected = torch.mm(x, w.t(), out_dtype=torch.float32)
    assert torch.equal(torch.ops.gemmbench.gemm_ex(x, w), expected)
    assert torch.ops.gemmbench.lt_algo_count(x, w) >= 1
    out = torch.full_like(expected, float("nan"))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        torch.ops.gemmbench.lt_out(x, w, out, 0)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-3)


def test_fake_implementation_reports_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(8, 7168, device=CUDA, dtype=torch.bfloat16)
        w = torch.empty(384, 7168, device=CUDA, dtype=torch.bfloat16)
        assert torch.ops.gemmbench.gemm_ex(x, w).shape == (8, 384)
        assert torch.ops.gemmbench.lt(x, w).dtype == torch.float32


def bf16(*shape, device=CUDA):
    return torch.randn(*shape, device=device, dtype=torch.bfloat16)


@pytest.mark.parametrize("op", ["gemm_ex", "lt"])
@pytest.mark.parametrize(
    "x, w, message",
    [
        (lambda: bf16(4, 64).half(), lambda: bf16(8, 64), "must be bfloat16"),
        (lambda: bf16(2, 4, 64), lambda: bf16(8, 64), "must be 2-D"),
        (lambda: bf16(4, 64), lambda: bf16(8, 32), "K mismatch"),
        (lambda: bf16(4, 64, device="cpu"), lambda: bf16(8, 64, device="cpu"), "must be CUDA tensors"),
        (lambda: bf16(4, 64, device="cpu"), lambda: bf16(8, 64), "must be CUDA tensors"),
        (lambda: bf16(64, 4).t(), lambda: bf16(8, 64), "must be contiguous"),
    ],
)
def test_bad_inputs_raise_clear_errors(op, x, w, message):
    with pytest.raises(RuntimeError, match=message):
        getattr(torch.ops.gemmbench, op)(x(), w())


def test_wrong_output_buffer_is_refused():
    with pytest.raises(RuntimeError, match="out must be a contiguous \\[4, 8\\]"):
        torch.ops.gemmbench.gemm_ex_out(bf16(4, 64), bf16(8, 64), torch.empty(8, 4, device=CUDA))
    with pytest.raises(RuntimeError, match="out must be float32"):
        torch.ops.gemmbench.lt_out(bf16(4, 64), bf16(8, 64), torch.empty(4, 8, device=CUDA, dtype=torch.bfloat16))


# gemmbench's first-tier kernels: the CUDA-core one, and the tensor-core one with its own choice of warps and
# splits and with the extremes of both: the fewest warps and the most splits (a cluster of 16), the most
# warps and the fewest splits that keep a warp's share of K short (a warp's tensor-core sum over all of K
# read 1.7e-6 against float64 with 4 warps and no split).
ROUTER_KERNELS = {
    "cuda_cores": lambda x, w, out, pdl=False: torch.ops.gemmbench.router_small_m_out(x, w, out, pdl),
    "mma": lambda x, w, out, pdl=False: torch.ops.gemmbench.router_small_m_mma_out(x, w, out, pdl),
    "mma_w4_s16": lambda x, w, out, pdl=False: torch.ops.gemmbench.router_small_m_mma_out(x, w, out, pdl, 4, 16),
    "mma_w16_s2": lambda x, w, out, pdl=False: torch.ops.gemmbench.router_small_m_mma_out(x, w, out, pdl, 16, 2),
}


@pytest.mark.parametrize("kernel", ROUTER_KERNELS)
@pytest.mark.parametrize("n, k", [(256, 7168), (384, 7168), (64, 7168), (256, 4096), (101, 1000)])
def test_router_kernels_are_exact_deterministic_and_capturable(kernel, n, k):
    """Every token count 1..16 with the kernels' own configurations (the extremes at the token counts where
    the tensor-core kernel's tiles change), on the router shapes and an odd N with a K no step divides."""
    run = ROUTER_KERNELS[kernel]
    w = bf16(n, k)
    for m in range(1, 17) if kernel in ("cuda_cores", "mma") else (1, 8, 9, 16):
        x = bf16(m, k)
        ref = torch.mm(x.double(), w.double().t())
        out = torch.full((m, n), float("nan"), device=CUDA)
        run(x, w, out)
        first = out.clone()
        assert ((first.double() - ref).norm() / ref.norm()).item() <= 1e-6, m
        run(x, w, out)
        assert torch.equal(first, out), m  # the same bits on every call
        for pdl in (False, True):  # with programmatic dependent launch, eagerly and in a graph: the same bits
            run(x, w, out, pdl)
            assert torch.equal(first, out), (m, pdl)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                run(x, w, out, pdl)
            out.zero_()
            graph.replay()
            torch.cuda.synchronize()
            assert torch.equal(first, out), (m, pdl)


@pytest.mark.parametrize("kernel", ROUTER_KERNELS)
@pytest.mark.parametrize("m", [1, 2, 4, 16])
def test_router_kernels_with_pdl_read_x_only_after_its_producer(kernel, m):
    """Launched with PDL right after gemmbench's RMSNorm, which lets dependents launch at its start: x is
    NaN until the norm writes it, so a kernel that loads x before waiting for the norm sends NaN (the
    CUDA-core kernel did at M <= 2, once: the compiler had hoisted its read-only loads above the wait)."""
    run = ROUTER_KERNELS[kernel]
    k, n = 7168, 256
    h, norm_weight, w = bf16(m, k), bf16(k), bf16(n, k)
    x = torch.empty_like(h)
    torch.ops.gemmbench.rms_norm_out(h, norm_weight, 1e-6, x, 0)
    expected = torch.empty(m, n, device=CUDA)
    run(x, w, expected)
    out = torch.empty_like(expected)
    for attempt in range(50):
        x.fill_(float("nan"))
        torch.ops.gemmbench.rms_norm_out(h, norm_weight, 1e-6, x, 1)
        run(x, w, out, True)
        assert torch.equal(out, expected), attempt


@pytest.mark.parametrize("splits", range(1, 17))
def test_the_tensor_core_kernel_is_exact_at_every_split(splits):
    """Every cluster size the operator takes, where a K of 1000 leaves some warps idle and a K of 64 (two
    32-element chunks) leaves most CTAs of the cluster without any of K; an odd N, both token tiles."""
    for n, k in ((101, 1000), (101, 64)):
        w = bf16(n, k)
        for m in (1, 9, 16):
            x = bf16(m, k)
            ref = torch.mm(x.double(), w.double().t())
            out = torch.full((m, n), float("nan"), device=CUDA)
            torch.ops.gemmbench.router_small_m_mma_out(x, w, out, False, 8, splits)
            assert ((out.double() - ref).norm() / ref.norm()).item() <= 1e-6, (n, k, m)


@pytest.mark.parametrize("kernel", [name for name in ROUTER_KERNELS if name.startswith("mma")])
def test_the_tensor_core_kernel_carries_an_inf_in_the_last_vector_of_k(kernel):
    """An Inf in a token's last 8 elements of K makes that token's outputs +-Inf, as float64 does; a vector
    a lane reads past K (K = 1000 fills no chunk) must add nothing, not 0 * Inf = NaN. (The CUDA-core
    kernel gives NaN there, on purpose: router_small_m.cu says why.)"""
    n, k = 101, 1000
    w = bf16(n, k)
    for m in (1, 9, 16):
        x = bf16(m, k)
        x[0, -1] = float("inf")
        ref = torch.mm(x.double(), w.double().t())
        out = torch.full((m, n), float("nan"), device=CUDA)
        ROUTER_KERNELS[kernel](x, w, out)
        assert torch.equal(out[0].isnan(), ref[0].isnan()), m  # NaN only where w's last element is 0
        assert torch.equal(out[0].isinf(), ref[0].isinf()), m
        assert not out[1:].isnan().any(), m


def test_the_tensor_core_kernel_refuses_what_it_cannot_run():
    x, w, out = bf16(2, 64), bf16(8, 64), torch.empty(2, 8, device=CUDA)
    with pytest.raises(RuntimeError, match="warps must be 0"):
        torch.ops.gemmbench.router_small_m_mma_out(x, w, out, False, 3, 0)
    with pytest.raises(RuntimeError, match="splits must be 0"):
        torch.ops.gemmbench.router_small_m_mma_out(x, w, out, False, 8, 17)
    with pytest.raises(RuntimeError, match="M must be 1..16"):
        torch.ops.gemmbench.router_small_m_mma_out(bf16(17, 64), w, torch.empty(17, 8, device=CUDA))


def test_router_small_m_ext_refuses_what_it_has_no_kernel_for():
    out = torch.empty(17, 8, device=CUDA)
    with pytest.raises(RuntimeError, match="M must be 1..16"):
        torch.ops.gemmbench.router_small_m_out(bf16(17, 64), bf16(8, 64), out)
    with pytest.raises(RuntimeError, match="K must be a multiple of 8"):
        torch.ops.gemmbench.router_small_m_out(bf16(2, 60), bf16(8, 60), torch.empty(2, 8, device=CUDA))
    with pytest.raises(RuntimeError, match="16-byte boundaries"):
        x = bf16(2 * 64 + 1)[1:].view(2, 64)  # one element past an aligned start
        torch.ops.gemmbench.router_small_m_out(x, bf16(8, 64), torch.empty(2, 8, device=CUDA))


@pytest.mark.parametrize("backend", ["router_small_m_ext", "router_small_m_mma"])
def test_first_tier_kernel_rows_carry_their_kernel(backend):
    from samples import measure_all

    from gemmbench.analysis.decode import decode
    from gemmbench.measure.bench import MeasureOptions
    from gemmbench.timing import timers as timing

    fast = MeasureOptions(warmup_s=0.005, target=timing.Target(budget_s=0.01, min_time_s=0.0), eager_windows=3)
    rows = measure_all([CASES[0]], [REGISTRY[backend]], CUDA, fast)
    assert [row.pdl for row in rows] == [False, True]  # it can launch with PDL: measured both ways
    for row in rows:
        assert row.status == "ok" and row.rel_err <= 1e-6
        assert [decode(k.name).family for k in row.kernels] == ["gemmbench"]
        assert backend.removeprefix("router_small_m") in row.kernels[0].name  # _ext or _mma: its own kernel


@pytest.mark.parametrize("m, k", [(1, 7168), (16, 7168), (3, 4096), (5, 1000)])
def test_gemmbench_rms_norm_matches_torch_and_is_the_same_wherever_it_triggers(m, k):
    h, weight = bf16(m, k), (1 + 0.1 * torch.randn(k, device=CUDA)).to(torch.bfloat16)
    expected = torch.nn.functional.rms_norm(h.float(), (k,), weight.float(), 1e-6)
    outputs = []
    for trigger in (0, 1, 2):
        x = torch.full_like(h, float("nan"))
        torch.ops.gemmbench.rms_norm_out(h, weight, 1e-6, x, trigger)
        outputs.append(x)
    assert all(torch.equal(outputs[0], x) for x in outputs[1:])
    assert ((outputs[0].float() - expected).norm() / expected.norm()).item() < 4e-3  # bf16 rounding of x


@pytest.mark.parametrize("backend", ["router_small_m_ext", "router_small_m_mma"])
def test_first_tier_kernels_after_each_producer_both_ways(backend):
    """Both variants (PDL off and on) alone, then in the layer after each of gemmbench's producers, in one
    point: right against the reference of what the producer wrote (x read only once it is written, even
    where the producer lets the GEMM launch at its start), and timed per layer."""
    from gemmbench.backends.producers import PRODUCERS
    from gemmbench.measure.bench import Bench, MeasureOptions
    from gemmbench.measure.points import measure_cases
    from gemmbench.timing import timers as timing

    fast = MeasureOptions(warmup_s=0.005, target=timing.Target(budget_s=0.01, min_time_s=0.0), eager_windows=3)
    contexts = ("gemmbench_norm_pdl_start", "gemmbench_norm_pdl_after_stores", "norm", "copy")
    producers = tuple(PRODUCERS[context] for context in contexts)
    rows = list(measure_cases([CASES[0]], [REGISTRY[backend]], Bench(CUDA, fast), producers=producers))
    expected = [(context, pdl, "ok") for context in (None, *contexts) for pdl in (False, True)]
    assert [(r.context, r.pdl, r.status) for r in rows] == expected, [r.reason for r in rows]
    alone = rows[:2]
    for row in rows:
        assert row.rel_err <= 1e-6 and row.device.timer == "cuda_graph" and row.latency.median_us > 0
        # one timer per row, alone or per layer: nothing subtracted, so nothing negative
        assert 0 < row.device.ci_low_us <= row.device.median_us <= row.device.ci_high_us
    for row in rows[2:]:
        assert row.tflops is None and row.floor_us is None  # the GEMM's throughput is of the rows alone
        assert row.device.median_us > alone[row.pdl].device.median_us  # the producer's kernel is in the layer
