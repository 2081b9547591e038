from dataclasses import replace

import pytest
import torch
from fakes import FAKE_LAUNCH_US, FAKE_TIMER, Fake, FakeBench, gemm_us
from samples import measure_all

from gemmbench.backends import REGISTRY, Backend
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.points import measure_cases
from gemmbench.records import ERROR, OK, SKIPPED, KernelRun
from gemmbench.spec.cases import Case
from gemmbench.timing import profile
from gemmbench.timing import timers as timing

CPU = torch.device("cpu")
FAKE = Fake()
FAST = MeasureOptions(
    warmup_s=0.0, target=timing.Target(budget_s=0.001, min_time_s=0.0), eager_windows=2, eager_window_s=0.0
)


class LazyBackend(Backend):
    """Writes nothing: the poisoned output must expose it."""

    name = "lazy"

    def prepare(self, case, inputs):
        return lambda: inputs.out


class BrokenBackend(Backend):
    name = "broken"

    def prepare(self, case, inputs):
        def call():
            raise RuntimeError("cuBLAS said no\nsecond line")

        return call


class HalfWrongBackend(Backend):
    name = "half_wrong"

    def prepare(self, case, inputs):
        return lambda: torch.mm(inputs.x.float(), inputs.w.float().t(), out=inputs.out).mul_(0.5)


def test_cpu_sweep_gives_a_row_per_case_and_backend(small_case):
    backends = [*(REGISTRY[n] for n in ("mm_out_dtype", "upcast", "linear_cast")), FAKE]
    records = list(measure_all([small_case, Case("custom", "8x16", "custom", 2, 8, 16)], backends, CPU, FAST))
    assert [(r.m, r.backend) for r in records] == [(m, b.name) for m in (4, 2) for b in backends]
    by_backend = {r.backend: r for r in records if r.m == 4}
    assert by_backend["mm_out_dtype"].status == SKIPPED and "aten::mm.dtype" in by_backend["mm_out_dtype"].reason
    upcast = by_backend["upcast"]
    assert upcast.status == OK and upcast.latency.timer == "host_clock" and upcast.device is None
    assert upcast.rel_err < 1e-6 and upcast.tflops > 0 and upcast.gbps > 0 and upcast.kernels is None
    assert 1e-4 < by_backend["linear_cast"].rel_err < 1e-2


def test_the_fake_bench_makes_up_deterministic_times(small_case):
    (record,) = measure_all([small_case], [FAKE], CPU, FAST, FakeBench)
    assert record.device.timer == record.latency.timer == FAKE_TIMER
    assert record.device.median_us == gemm_us(small_case)
    assert record.latency.median_us == pytest.approx(record.device.median_us + FAKE_LAUNCH_US)
    assert record.tflops == pytest.approx(small_case.flops / record.device.median_us / 1e6)


@pytest.mark.parametrize(
    "backend, reason",
    [
        (LazyBackend(), "OutputNotWritten: lazy never wrote out: a backend's call computes into inputs.out"),
        (HalfWrongBackend(), "wrong result: rel_err 0.5"),
        (BrokenBackend(), "RuntimeError: cuBLAS said no"),
    ],
)
def test_failures_are_error_rows_not_exceptions(small_case, backend, reason):
    (record,) = measure_all([small_case], [backend], CPU, FAST)
    assert record.status == ERROR and record.reason.startswith(reason) and "\n" not in record.reason
    assert record.latency is None


def test_unsupported_dtypes_are_skipped():
    case = Case("custom", "x", "custom", 2, 8, 16, in_dtype="fp16")
    (record,) = measure_all([case], [REGISTRY["upcast"]], CPU, FAST)
    assert record.status == SKIPPED and "only bf16" in record.reason


def test_check_only_sweep_skips_timers(small_case):
    (record,) = measure_all([small_case], [REGISTRY["upcast"]], CPU, MeasureOptions(time_calls=False))
    assert record.status == OK and record.rel_err is not None and record.latency is None


def _profile_on_a_pretend_gpu(monkeypatch, small_case, outcome):
    """profile_records over three fake rows with `outcome(key, call)` standing in for torch.profiler on each
    call (a KernelTrace, or an exception): inputs are made on the CPU, the device only says cuda."""
    from gemmbench.measure import points as measure
    from gemmbench.timing import inputs

    made = []

    def capture_many(count, make_call, device, done):
        traces, failures = {}, {}
        for key in range(count):
            result = outcome(key, make_call(key))
            (traces if isinstance(result, profile.KernelTrace) else failures)[key] = result
            done(key)
        return traces, failures

    records = measure_all([small_case], [FAKE], CPU, FAST, FakeBench) * 3
    monkeypatch.setattr(profile, "capture_many", capture_many)
    monkeypatch.setattr(
        measure, "make_inputs", lambda case, device, seed: made.append(case) or inputs.make_inputs(case, CPU, seed)
    )
    warnings, done = [], []
    pretend_gpu = Bench(torch.device("cuda"), FAST)
    out = measure.profile_records(records, [FAKE], pretend_gpu, warnings.append, done.append)
    assert done == [0, 1, 2] and made == [small_case]  # one set of inputs for the three rows of one case
    return records, out, warnings


def test_an_unavailable_profiler_warns_once_and_rows_keep_their_timings(monkeypatch, small_case):
    from gemmbench.measure import points as measure

    def refuse(count, make_call, device, done):
        raise profile.ProfilerUnavailable("CUPTI refused")

    monkeypatch.setattr(profile, "capture_many", refuse)
    records = measure_all([small_case], [FAKE], CPU, FAST, FakeBench) * 2
    warnings = []
    pretend_gpu = Bench(torch.device("cuda"), FAST)
    assert measure.profile_records(records, [FAKE], pretend_gpu, warnings.append) == records
    assert len(warnings) == 1 and "CUPTI refused" in warnings[0]


def test_a_call_that_fails_under_the_profiler_keeps_its_row_with_a_note(monkeypatch, small_case):
    records, out, warnings = _profile_on_a_pretend_gpu(
        monkeypatch, small_case, lambda key, call: RuntimeError("launch failed\nmore")
    )
    assert not warnings and len(out) == 3
    for record, before in zip(out, records, strict=True):
        assert record.reason == "kernel pass: RuntimeError: launch failed" and record.kernels is None
        assert record.device.median_us == before.device.median_us


def test_the_kernel_pass_records_what_the_profiler_saw(monkeypatch, small_case):
    trace = profile.KernelTrace((KernelRun("nvjet_sm90_tss_64x8_64x16_4x1_v_bz_TNT", 4.0),), 4.0)
    _, out, _ = _profile_on_a_pretend_gpu(monkeypatch, small_case, lambda key, call: trace)
    assert all(r.kernels == trace.kernels and r.kernel_count == 1 and r.kernel_sum_us == 4.0 for r in out)


def test_nothing_is_profiled_off_a_gpu(small_case):
    from gemmbench.measure import points as measure

    records = measure_all([small_case], [FAKE], CPU, FAST, FakeBench)
    assert measure.profile_records(records, [FAKE], Bench(CPU, FAST)) == records


def test_cpu_rows_carry_no_l2_mode_and_their_ci(small_case):
    (record,) = measure_all([small_case], [REGISTRY["upcast"]], CPU, FAST)
    assert record.l2_mode is None and record.l2_copies is None
    assert record.latency.ci_low_us <= record.latency.median_us <= record.latency.ci_high_us
    assert record.noisy in (True, False) and record.clocks is None and not record.throttled


def test_eager_windows_go_round_robin_between_the_backends_of_a_point(monkeypatch, small_case):
    from gemmbench.timing import timers as timing

    order = []
    real = timing.sample_window

    def spy(fn, timer, seconds):
        order.append(fn)
        return real(fn, timer, seconds)

    monkeypatch.setattr(timing, "sample_window", spy)
    backends = [REGISTRY["upcast"], HalfUpcast()]
    target = timing.Target(budget_s=0.001, min_time_s=0.0)
    options = MeasureOptions(warmup_s=0.0, target=target, eager_windows=3, max_eager_windows=3)
    records = measure_all([small_case], backends, CPU, options)
    assert [r.status for r in records] == [OK, OK]
    first, second = order[0], order[1]
    assert first is not second and order == [first, second] * 3
    assert records[0].latency.samples >= 3  # every window's samples are kept


class HalfUpcast(Backend):
    """A second CPU backend: the same product, computed in two halves of N."""

    name = "half_upcast"

    def prepare(self, case, inputs):
        half = case.n // 2

        def call():
            torch.mm(inputs.x.float(), inputs.w[:half].float().t(), out=inputs.out[:, :half])
            torch.mm(inputs.x.float(), inputs.w[half:].float().t(), out=inputs.out[:, half:])

        return call


class TuningFake(Fake):
    """The fake, tuned once per N as router_small_m is per shape, saying what it does in `events`; its calls
    are the correctness check's and the timers'."""

    name = "tuning_fake"

    def __init__(self, events):
        self.events, self.tuned = events, set()

    def tuning_note(self, case, device):
        return None if case.n in self.tuned else f"tuning for N={case.n}"

    def tune(self, case, inputs, timer):
        self.events.append(("tune", case.m, hasattr(timer, "device_time_us")))
        self.tuned.add(case.n)

    def prepare(self, case, inputs):
        assert case.n in self.tuned, "prepared before tune"
        call = super().prepare(case, inputs)
        return lambda: self.events.append(("call", case.m)) or call()


def test_a_sweep_tunes_every_backend_of_a_case_before_checking_it_announcing_it_once(small_case):
    notes, events = [], []
    other = replace(small_case, m=2)
    list(measure_cases([small_case, other], [TuningFake(events)], Bench(CPU, FAST), note=notes.append))
    assert notes == [f"tuning for N={small_case.n}"]
    tuned = [event for event in events if event[0] == "tune"]
    assert tuned == [("tune", small_case.m, True), ("tune", other.m, True)]  # every case, with a timer
    for case in (small_case, other):  # each case's tuning comes before its first call (the check)
        assert events.index(("tune", case.m, True)) < events.index(("call", case.m))


class FailingTuning(Fake):
    """A tuned backend whose tuning fails, as where no candidate runs."""

    name = "failing_tuning"

    def tune(self, case, inputs, timer):
        raise RuntimeError("no configuration runs here\nsecond line")

    def prepare(self, case, inputs):
        raise AssertionError("prepared although its tuning failed")


def test_a_tuning_that_fails_is_the_backends_error_row_and_the_sweep_goes_on(small_case):
    rows = list(measure_cases([small_case], [FailingTuning(), Fake()], Bench(CPU, FAST)))
    assert [(r.backend, r.status) for r in rows] == [("failing_tuning", ERROR), ("fake", OK)]
    assert rows[0].reason == "tuning: RuntimeError: no configuration runs here"


def test_a_call_whose_windows_disagree_gets_more_windows_than_a_steady_one(monkeypatch):
    # Window medians by call: steady; one hiccup in the first window; never steady (alternating).
    medians = {"steady": iter([10.0] * 50), "hiccup": iter([30.0] + [10.0] * 50), "moving": iter([10.0, 20.0] * 25)}
    monkeypatch.setattr(timing, "sample_window", lambda fn, timer, seconds: [next(medians[fn()])])
    bench = Bench(CPU, MeasureOptions(eager_windows=6, max_eager_windows=12))
    samples, failures = bench.eager_latency({key: [lambda key=key: key] for key in medians})
    assert not failures
    assert [len(samples[key].window_medians_us) for key in medians] == [6, 9, 12]
    assert [samples[key].noisy for key in medians] == [False, False, True]


def test_a_graph_failure_note_names_an_exception_without_a_message():
    from gemmbench.measure.bench import graph_failure_note

    assert graph_failure_note(ValueError()) == "graph timer failed: ValueError"
    assert graph_failure_note(RuntimeError("capture failed\nmore")) == "graph timer failed: capture failed"


def test_every_row_is_timed_on_every_placement_of_its_inputs_in_turn(monkeypatch, small_case):
    sampled = []
    real = timing.sample_window

    def spy(fn, timer, seconds):
        sampled.append(fn)
        return real(fn, timer, seconds)

    monkeypatch.setattr(timing, "sample_window", spy)
    backend = InputsSeen()
    options = MeasureOptions(warmup_s=0.0, target=FAST.target, eager_windows=6, max_eager_windows=6, placements=3)
    (record,) = measure_all([small_case], [backend], CPU, options)
    assert record.status == OK and record.latency.samples >= 6
    # The check's inputs, then two more placements, each set allocated apart with the same values.
    assert len(backend.seen) == 3 and len({id(inputs.x) for inputs in backend.seen}) == 3
    assert all(torch.equal(inputs.x, backend.seen[0].x) for inputs in backend.seen)
    # Six windows, the placements in turn.
    assert len(sampled) == 6 and len(set(map(id, sampled[:3]))) == 3 and sampled[:3] == sampled[3:]


class InputsSeen(Backend):
    """Records the inputs it is prepared on."""

    name = "inputs_seen"

    def __init__(self):
        self.seen = []

    def prepare(self, case, inputs):
        self.seen.append(inputs)
        return lambda: torch.mm(inputs.x.float(), inputs.w.float().t(), out=inputs.out)


def test_placements_are_allocated_apart_and_cut_to_what_fits_in_memory(monkeypatch):
    from gemmbench.timing import inputs

    made = iter(range(10))
    placements = inputs.placed(lambda: (next(made), "note of the first"), CPU, 4, seed=0)
    assert placements.sets == [0, 1, 2, 3] and len(placements.spacers) == 2 * 3
    assert placements.note == "note of the first" and placements.first == 0
    monkeypatch.setattr(inputs, "placements_fitting", lambda wanted, used, device: 2)
    cut = inputs.placed(lambda: (next(made), ""), CPU, 4, seed=0)
    assert cut.sets == [4, 5] and cut.note == "placements: only 2 of 4 fit in memory"


def test_a_plan_samples_one_placement_on_the_cpu_unless_asked(tmp_path):
    from gemmbench.errors import UsageError
    from gemmbench.measure.session import plan_sweep

    assert plan_sweep(shapes=["8x64"], m=[1], device="cpu").options.placements == 1
    assert plan_sweep(shapes=["8x64"], m=[1], device="cpu", placements=3).options.placements == 3
    for bad in (0, 2.5, True, 10_000):
        with pytest.raises(UsageError, match="placements"):
            plan_sweep(shapes=["8x64"], m=[1], device="cpu", placements=bad)


def test_placements_that_fit_are_counted_from_the_free_memory(monkeypatch):
    from gemmbench.timing import inputs

    per_set = 100 << 20
    spacers = inputs.SPACER_MAX_BYTES + inputs.SMALL_SPACER_MAX_BYTES
    # Half the free memory holds two more sets and their spacers: three in all (the first is made already).
    free = 2 * 2 * (per_set + spacers)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free, 10 * free))
    assert inputs.placements_fitting(6, per_set, torch.device("cuda")) == 3
    assert inputs.placements_fitting(2, per_set, torch.device("cuda")) == 2
    assert inputs.placements_fitting(6, per_set, CPU) == 6  # the CPU's memory is the host's: not counted here


class FailsOnItsSecondSet(Backend):
    """Computes on the first set of inputs it is prepared on and raises on any other."""

    name = "fails_on_second_set"

    def __init__(self):
        self.first = None

    def prepare(self, case, inputs):
        self.first = self.first or inputs.x.data_ptr()
        mine = inputs.x.data_ptr() == self.first

        def call():
            if not mine:
                raise RuntimeError("this placement's buffers")
            return torch.mm(inputs.x.float(), inputs.w.float().t(), out=inputs.out)

        return call


def test_a_backend_that_fails_on_another_placement_is_an_error_row_and_the_others_are_timed(small_case):
    options = MeasureOptions(warmup_s=0.0, target=FAST.target, eager_windows=2, eager_window_s=0.0, placements=2)
    failing, upcast = measure_all([small_case], [FailsOnItsSecondSet(), REGISTRY["upcast"]], CPU, options)
    assert failing.status == ERROR and "this placement's buffers" in failing.reason
    assert upcast.status == OK and upcast.latency.samples >= 2


def test_each_backend_compiles_ahead_once_with_the_cases_it_runs_before_any_case_is_prepared():
    events = []

    class Compiling(Fake):
        name, max_m = "compiling", 8
        unavailable_reason = Backend.unavailable_reason  # beyond max_m, a skipped row (Fake runs every case)

        def compile_ahead(self, cases, device):
            events.append(("compile_ahead", [case.m for case in cases]))

        def prepare(self, case, inputs, **kwargs):
            events.append(("prepare", case.m))
            return super().prepare(case, inputs, **kwargs)

    cases = [Case("custom", "x", "custom", m, 8, 16) for m in (1, 8, 64)]
    records = measure_all(cases, [Compiling()], CPU, FAST, bench_type=FakeBench)
    assert [r.status for r in records] == [OK, OK, SKIPPED]
    assert events[0] == ("compile_ahead", [1, 8])  # once, first, without the case beyond its range
    assert [name for name, _ in events].count("compile_ahead") == 1
