import json
import math

import pytest
import torch

from gemmbench.backends import REGISTRY
from gemmbench.measure.routing import (
    OUTLIER_CHANNELS,
    OUTLIER_SCALE,
    OUTLIERS,
    ROUTING_TOKENS,
    RoutingCheck,
    fidelity,
    route,
    synthetic_inputs,
)
from gemmbench.spec.cases import PLAIN_TOPK, SIGMOID, SOFTMAX, SQRTSOFTPLUS, Case, RoutingSpec
from gemmbench.spec.presets import load_preset

CPU = torch.device("cpu")
ROUTER = Case("test", "router", "router", 64, 64, 256, top_k=4)
GROUPED = RoutingSpec(SIGMOID, bias=True, n_group=4, topk_group=2, normalize=True, scale=2.5)


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_synthetic_logits_have_unit_spread_and_outliers_are_a_few_large_channels():
    inputs = synthetic_inputs(ROUTER, 512, CPU, seed=0)
    logits = inputs.x.double() @ inputs.w.double().t()
    assert 0.8 < logits.std().item() < 1.2 and not inputs.bias.any()
    wide = synthetic_inputs(ROUTER, 512, CPU, seed=0, kind=OUTLIERS).x.double()
    large = (wide.std(dim=0) > OUTLIER_SCALE / 2).sum().item()
    assert large == OUTLIER_CHANNELS


def test_deepseek_v3_grouped_sigmoid_routing_by_hand():
    # Eight experts in four groups of two; two groups kept, two experts chosen.
    logits = torch.tensor([[3.0, -3.0, 1.0, 0.9, 2.0, -3.0, -3.0, -3.0]])
    s = [sigmoid(v) for v in logits[0].tolist()]
    # Group scores (both experts of each): g0 = s0 + s1 = 1.0, g1 = 1.442, g2 = 0.928, g3 = 0.142: g1 and g0
    # are kept, so expert 4 (the second-best score) cannot be chosen; experts 0 and 2 are.
    routed = route(logits, 2, GROUPED, torch.zeros(8))
    assert routed.experts.tolist() == [[0, 2]]
    expected = [0.0] * 8
    expected[0], expected[2] = 2.5 * s[0] / (s[0] + s[2]), 2.5 * s[2] / (s[0] + s[2])
    assert routed.weights[0].tolist() == pytest.approx(expected)
    # A bias of +1 on expert 5 lifts group 2 (0.881 + 1.047) above the others and expert 5 into the choice;
    # the weights are still the unbiased scores, normalised.
    bias = torch.zeros(8)
    bias[5] = 1.0
    biased = route(logits, 2, GROUPED, bias)
    assert biased.experts.tolist() == [[4, 5]]
    assert biased.weights[0, 4].item() == pytest.approx(2.5 * s[4] / (s[4] + s[5]))
    # Without groups, the same scores choose experts 0 and 4.
    assert route(logits, 2, RoutingSpec(SIGMOID), None).experts.tolist() == [[0, 4]]


def test_softmax_normalised_weights_are_a_softmax_over_the_chosen_logits_as_plain_top_k_weighs_them():
    logits = torch.randn(16, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    qwen = route(logits, 4, RoutingSpec(SOFTMAX, normalize=True))
    plain = route(logits, 4, PLAIN_TOPK)
    assert torch.equal(qwen.experts, plain.experts)
    assert torch.allclose(qwen.weights, plain.weights)
    chosen = logits.topk(4).indices
    assert torch.allclose(plain.weights.gather(1, chosen), torch.softmax(logits.gather(1, chosen), dim=1))


def test_sqrtsoftplus_scores_weigh_the_chosen():
    logits = torch.tensor([[0.0, 2.0, -1.0, 1.0]])
    routed = route(logits, 2, RoutingSpec(SQRTSOFTPLUS, normalize=True, scale=1.5))
    scores = [math.sqrt(math.log1p(math.exp(v))) for v in (2.0, 1.0)]
    assert routed.experts.tolist() == [[1, 3]]
    assert routed.weights[0, 1].item() == pytest.approx(1.5 * scores[0] / sum(scores))


def test_fidelity_counts_changed_sets_weight_distance_and_load():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0]])
    reference = route(logits, 2, PLAIN_TOPK)
    same = fidelity(reference, reference, 4)
    assert (same.flips, same.weight_l1_mean, same.weight_l1_max, same.load_change) == (0.0, 0.0, 0.0, 0.0)
    moved = route(torch.tensor([[3.0, 2.0, 1.0, 0.0], [3.0, 0.0, 1.0, 2.0]]), 2, PLAIN_TOPK)
    changed = fidelity(moved, reference, 4)
    assert changed.flips == 0.5 and changed.weight_l1_max > 0 and changed.weight_l1_mean == changed.weight_l1_max / 2
    # Expert 1 lost one of its two tokens, expert 3 gained one; the mean load is 2 * 2 / 4 = 1.
    assert changed.load_change == 1.0


# Each preset's routing function as its cited config.json and modelling code state it (configs/*.toml).
CITED = {
    "deepseek-v3": RoutingSpec(SIGMOID, True, 8, 4, True, 2.5),
    "deepseek-v3.2": RoutingSpec(SIGMOID, True, 8, 4, True, 2.5),
    "deepseek-v4-pro": RoutingSpec(SQRTSOFTPLUS, True, 1, 1, True, 2.5),
    "deepseek-v4-flash": RoutingSpec(SQRTSOFTPLUS, True, 1, 1, True, 1.5),
    "kimi-k2": RoutingSpec(SIGMOID, True, 1, 1, True, 2.827),
    "glm-5": RoutingSpec(SIGMOID, True, 1, 1, True, 2.5),
    "qwen3-235b-a22b": RoutingSpec(SOFTMAX, False, 1, 1, True, 1.0),
    "qwen3-30b-a3b": RoutingSpec(SOFTMAX, False, 1, 1, True, 1.0),
}


@pytest.mark.parametrize("preset", sorted(CITED))
def test_each_presets_router_routes_as_its_config_says(preset):
    (router,) = [g for g in load_preset(preset).gemms if g.role == "router"]
    assert router.routing == CITED[preset] and router.case(1).routing == CITED[preset]


def test_fp32_output_routes_like_float64_and_bf16_rounding_does_not():
    check = RoutingCheck.for_case(ROUTER, CPU, seed=0)
    assert check.measure(REGISTRY["upcast"]).flips == 0.0
    rounded = check.measure(REGISTRY["linear_cast"])
    assert 0.0 < rounded.flips < 0.5 and rounded.weight_l1_max > 0 and rounded.load_change > 0


def test_a_grouped_router_is_checked_with_its_function():
    case = Case("test", "router", "router", 64, 64, 256, top_k=4, routing=GROUPED)
    check = RoutingCheck.for_case(case, CPU, seed=0)
    assert check.spec == GROUPED and check.measure(REGISTRY["upcast"]).flips == 0.0
    plain = RoutingCheck.for_case(ROUTER, CPU, seed=0)
    assert not torch.equal(check.expected.experts, plain.expected.experts)  # the function decides the choice


def test_every_token_is_computed_with_the_cases_m():
    seen = []
    backend = REGISTRY["upcast"]

    class Counting(type(backend)):
        def prepare(self, case, inputs):
            seen.append(inputs.x.shape[0])
            return super().prepare(case, inputs)

    RoutingCheck.for_case(ROUTER, CPU, seed=0).measure(Counting())
    assert set(seen) == {64} and sum(seen) >= ROUTING_TOKENS - 64


def test_a_cases_backends_share_one_routing_check(monkeypatch):
    from samples import measure_all

    from gemmbench.measure import routing
    from tests.test_measure import FAST

    made = []
    for_case = routing.RoutingCheck.for_case
    monkeypatch.setattr(routing.RoutingCheck, "for_case", lambda *args: made.append(args) or for_case(*args))
    records = measure_all([ROUTER], [REGISTRY["upcast"], REGISTRY["linear_cast"]], CPU, FAST)
    assert len(made) == 1 and all(r.topk_mismatch is not None and r.weight_l1_mean is not None for r in records)
    assert {r.routing_inputs for r in records} == {"w synthetic, x synthetic normal"}


def test_recommend_qualifies_by_routing_only_where_asked():
    from dataclasses import replace

    from samples import CASE, timed

    from gemmbench.analysis.recommend import recommend
    from gemmbench.output.recommend import recommendation_markdown

    router = replace(CASE, top_k=8)  # a router whose output is routed: the check applies
    # A fast backend that changes 3% of tokens' experts (its rel_err passes a loose tolerance), a slower exact one.
    rows = [
        timed("linear_cast", 5.0, 1e-3, router, topk_mismatch=0.03),
        timed("mm_out_dtype", 7.0, 1e-6, router, topk_mismatch=0.0),
    ]
    (loose,) = recommend(rows, tolerance=1e-2)
    assert loose.winners == {1: "linear_cast"}
    (routed,) = recommend(rows, tolerance=1e-2, max_flips=0.01)
    assert routed.winners == {1: "mm_out_dtype"} and set(routed.excluded) == {"linear_cast"}
    text = recommendation_markdown([routed])
    assert "top-k≠ <= 1.00%" in text and "linear_cast never qualified: top-k≠ 3.00% > 1.00%" in text
    (unchecked,) = recommend([timed("mm_out_dtype", 7.0, 1e-6, router)], max_flips=0.01)  # no check recorded
    assert not unchecked.ranges
    (not_a_router,) = recommend([timed("mm_out_dtype", 7.0, 1e-6)], max_flips=0.01)  # no top_k: exempt
    assert not_a_router.winners == {1: "mm_out_dtype"}


def test_the_recommend_command_takes_max_flips_in_percent(tmp_path):
    from dataclasses import replace

    from samples import CASE, timed
    from typer.testing import CliRunner

    from gemmbench.cli import app
    from gemmbench.records import Provenance
    from gemmbench.records.runfile import Run, run_to_json

    router = replace(CASE, top_k=8)
    rows = [
        timed("linear_cast", 5.0, 1e-3, router, topk_mismatch=0.03),
        timed("mm_out_dtype", 7.0, 1e-6, router, topk_mismatch=0.0),
    ]
    path = tmp_path / "run.json"
    path.write_text(run_to_json(Run(Provenance(), rows)))
    result = CliRunner().invoke(app, ["recommend", str(path), "--tolerance", "1e-2", "--max-flips", "1", "--json"])
    assert result.exit_code == 0, result.output
    (answer,) = json.loads(result.stdout)
    assert answer["max_flips"] == 0.01 and answer["winners"] == {"1": "mm_out_dtype"}


def test_one_token_of_2048_routed_elsewhere_does_not_read_as_none():
    from samples import timed

    from gemmbench.output.sweep import routing_note

    notes = [routing_note(timed("a", 5.0, 1e-6, topk_mismatch=share)) for share in (0.0, 1 / 2048, 0.03)]
    assert notes == ["top-k≠ 0.0%", "top-k≠ 0.049%", "top-k≠ 3.0%"]
