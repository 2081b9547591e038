import torch

from gemmbench.backends import REGISTRY
from gemmbench.measure.routing import ROUTING_TOKENS, expert_sets, routing_inputs, topk_mismatch
from gemmbench.spec.cases import Case

CPU = torch.device("cpu")
ROUTER = Case("test", "router", "router", 64, 64, 256, top_k=4)


def test_logits_have_unit_spread():
    x, w = routing_inputs(ROUTER, 512, CPU, seed=0)
    logits = x.double() @ w.double().t()
    assert 0.8 < logits.std().item() < 1.2


def test_expert_sets_ignore_order():
    logits = torch.tensor([[0.1, 0.9, 0.5, 0.7], [0.9, 0.1, 0.7, 0.5]])
    assert expert_sets(logits, 2).tolist() == [[1, 3], [0, 2]]


def test_fp32_output_routes_like_float64_and_bf16_rounding_does_not():
    assert topk_mismatch(REGISTRY["upcast"], ROUTER, CPU, seed=0) == 0.0
    assert 0.0 < topk_mismatch(REGISTRY["linear_cast"], ROUTER, CPU, seed=0) < 0.5


def test_every_token_is_computed_with_the_cases_m():
    seen = []
    backend = REGISTRY["upcast"]

    class Counting(type(backend)):
        def prepare(self, case, inputs):
            seen.append(inputs.x.shape[0])
            return super().prepare(case, inputs)

    topk_mismatch(Counting(), ROUTER, CPU, seed=0)
    assert set(seen) == {64} and sum(seen) >= ROUTING_TOKENS


def test_a_cases_backends_share_one_routing_check(monkeypatch):
    from samples import measure_all

    from gemmbench.measure import routing
    from tests.test_measure import FAST

    made = []
    for_case = routing.RoutingCheck.for_case
    monkeypatch.setattr(routing.RoutingCheck, "for_case", lambda *args: made.append(args) or for_case(*args))
    records = measure_all([ROUTER], [REGISTRY["upcast"], REGISTRY["linear_cast"]], CPU, FAST)
    assert len(made) == 1 and all(r.topk_mismatch is not None for r in records)
