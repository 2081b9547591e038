import math

import pytest
import torch

from gemmbench.spec.cases import Case
from gemmbench.timing.inputs import cold_copies, make_inputs, reference, relative_error, rotating

CPU = torch.device("cpu")


def test_inputs_are_random_and_reproducible(small_case):
    first, second = make_inputs(small_case, CPU, seed=1), make_inputs(small_case, CPU, seed=1)
    assert torch.equal(first.x, second.x) and first.x.abs().sum() > 0 and first.x.dtype == torch.bfloat16
    assert not torch.equal(first.x, make_inputs(small_case, CPU, seed=2).x)


def test_relative_error_is_nan_for_unwritten_output(small_case):
    inputs = make_inputs(small_case, CPU, 0)
    ref = reference(inputs)
    assert relative_error(ref.float(), ref) < 1e-6
    assert math.isnan(relative_error(torch.full_like(inputs.out, math.nan), ref))


def test_cold_copies_span_twice_the_l2_within_memory():
    router = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)  # ~3.7 MB a copy
    l2 = 50 * 2**20
    assert cold_copies(router.bytes_moved, l2, free_bytes=80 * 2**30) == (29, 29)
    assert cold_copies(router.bytes_moved, l2, free_bytes=20 * 2**20) == (2, 29)  # memory-bound: fewer copies, said so
    huge = Case("x", "y", "attention", 16384, 2048, 7168)
    assert cold_copies(huge.bytes_moved, l2, free_bytes=80 * 2**30) == (2, 2)
    tiny = Case("x", "y", "attention", 1, 8, 16)
    assert cold_copies(tiny.bytes_moved, l2, free_bytes=80 * 2**30)[0] == 512


def test_rotating_calls_cycles_through_every_copy():
    seen = []
    call = rotating([lambda i=i: seen.append(i) for i in range(3)])
    for _ in range(7):
        call()
    assert seen == [0, 1, 2, 0, 1, 2, 0]


def test_reference_and_relative_error_in_row_blocks_match_whole_tensors(monkeypatch):
    from gemmbench.timing import inputs as module

    case = Case("custom", "x", "custom", 37, 8, 16)
    made = make_inputs(case, CPU, seed=3)
    whole = torch.mm(made.x.double(), made.w.double().t())
    out = (whole * (1 + 1e-3)).float()
    expected = (torch.linalg.vector_norm(out.double() - whole) / torch.linalg.vector_norm(whole)).item()
    monkeypatch.setattr(module, "REFERENCE_BLOCK_BYTES", 5 * 16 * 8)  # 5 rows of x a block: 8 blocks
    assert len(module._row_blocks(37, 16 * 8)) == 8
    ref = reference(made)
    assert torch.equal(ref, whole)
    assert relative_error(out, ref) == pytest.approx(expected, rel=1e-12)


def test_a_case_that_cannot_be_checked_in_host_memory_fails_before_its_operands_are_made(monkeypatch):
    from gemmbench.timing import inputs

    monkeypatch.setattr(inputs, "host_memory_available", lambda: 24 * 10**9)
    made = []
    monkeypatch.setattr(torch, "randn", lambda *args, **kwargs: made.append(args))
    # w in bf16 (20 GB) fits in 24 GB; with its pristine copy and w in float64 (80 GB) it does not
    with pytest.raises(MemoryError, match="checking it needs 120.3 GB, the host has 24.0 GB available"):
        make_inputs(Case("custom", "x", "custom", 1, 100_000, 100_000), torch.device("cpu"), seed=0)
    assert made == []


def test_an_output_left_as_poisoned_is_unwritten_unless_the_reference_is_nan_too():
    from gemmbench.timing.inputs import unwritten

    poisoned, ref = torch.full((2, 3), math.nan), torch.ones(2, 3, dtype=torch.float64)
    assert unwritten(poisoned, ref)
    assert not unwritten(poisoned, torch.full((2, 3), math.nan, dtype=torch.float64))  # NaN inputs: NaN is right
    partly = poisoned.clone()
    partly[0] = 1.0
    assert unwritten(partly, ref) == "left 3 of 6 outputs unwritten (still NaN)"  # written in part
