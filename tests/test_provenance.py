"""A run's provenance as a typed object: every run file's provenance read and written back key for key, facts
recorded as unknown kept apart from facts never recorded, keys no field holds kept, malformed facts named."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gemmbench.errors import GemmbenchError
from gemmbench.measure.environment import collect_provenance
from gemmbench.records.provenance import FACTS, FleetProvenance, Provenance, Roofline

FIXTURES = Path(__file__).parent / "fixtures"


def is_run_file(path: Path) -> bool:
    doc = json.loads(path.read_text())
    return isinstance(doc, dict) and doc.get("schema") == "gemmbench.run"


# The run files among the fixtures: runs of several formats (before and after clocks, contexts and the
# roofline were recorded), a fleet rank's and one with flashinfer installed.
RUN_FILES = [path for path in sorted(FIXTURES.glob("*.json")) if is_run_file(path)]


def test_the_fixtures_hold_every_form_of_provenance():
    forms = [json.loads(path.read_text())["provenance"] for path in RUN_FILES]
    assert len(RUN_FILES) >= 10
    assert any("fleet" in facts for facts in forms) and any("flashinfer" in facts for facts in forms)
    assert any("context" in facts for facts in forms) and any("sm_clock_mhz_start" not in facts for facts in forms)


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda path: path.name)
def test_every_run_files_provenance_reads_back_key_for_key(path):
    facts = json.loads(path.read_text())["provenance"]
    provenance = Provenance.from_dict(facts)
    assert json.dumps(provenance.to_dict()) == json.dumps(facts)  # the keys, their order and their values
    assert provenance.device_name == facts["device_name"]


def test_the_typed_facts_of_a_fleet_run():
    facts = json.loads((FIXTURES / "h200_one_rank_torchrun.json").read_text())["provenance"]
    provenance = Provenance.from_dict(facts)
    assert isinstance(provenance.roofline, Roofline) and provenance.roofline.bandwidth_gbps > 0
    assert isinstance(provenance.fleet, FleetProvenance) and provenance.fleet.world_size == 1
    assert [rank.device_id for rank in provenance.fleet.ranks] == ["vm:cuda:0"]


def test_unknown_and_unrecorded_facts_stay_apart_and_unknown_keys_stay_in_place():
    facts = {"gemmbench": "0.1.0", "cuda": None, "note": {"by": "hand"}, "device_type": "cpu"}
    provenance = Provenance.from_dict(facts)
    assert provenance.cuda is None and provenance.driver is None
    assert provenance.others == {"note": {"by": "hand"}}
    assert provenance.to_dict() == facts and list(provenance.to_dict()) == list(facts)  # "cuda": null kept


def test_facts_added_later_follow_those_held_in_field_order():
    held = Provenance.of(started="today", cuda=None)
    added = replace(held, rank=1, context="none")
    assert list(added.to_dict()) == ["started", "cuda", "context", "rank"]
    assert Provenance(device_name="x").to_dict() == {"device_name": "x"} and not Provenance().recorded


def test_the_provenance_collected_on_the_cpu_holds_the_facts_a_cpu_run_records():
    facts = collect_provenance(torch.device("cpu"), argv=["sweep"]).to_dict()
    assert list(facts)[:7] == ["gemmbench", "python", "torch", "cuda", "device_type", "device_name", "cpu_threads"]
    assert facts["command"] == "gemmbench sweep" and set(facts) <= set(FACTS)


@pytest.mark.parametrize(
    "facts, message",
    [
        ({"memory_gib": "80 GB"}, r"provenance's memory_gib is \"80 GB\": not a finite number"),
        ({"sm_count": True}, "provenance's sm_count is true: not an integer"),
        ({"roofline": {"bandwidth_gbps": 3000.0}}, "provenance's roofline has no 'bf16_tflops'"),
        (
            {"fleet": {"world_size": 1, "split": "none", "ranks": [{"rank": "0"}]}},
            r"provenance's fleet's ranks\[0\]'s rank is \"0\": not an integer",
        ),
        ({"fleet": {"world_size": 1, "split": "none", "ranks": {}}}, "provenance's fleet's ranks is {}: not a list"),
        ([1, 2], r"provenance is \[1, 2\]: not an object"),
    ],
)
def test_a_malformed_fact_is_named(facts, message):
    with pytest.raises(GemmbenchError, match=message):
        Provenance.from_dict(facts, "run.json: provenance")
