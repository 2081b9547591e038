import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from samples import sample_records

from gemmbench.errors import GemmbenchError
from gemmbench.files import write_fallback
from gemmbench.records import KernelRun, runfile
from gemmbench.records.provenance import Provenance
from gemmbench.records.runfile import (
    SCHEMA_VERSION,
    Run,
    RunWriter,
    ensure_writable_dir,
    ensure_writable_file,
    load_run,
    new_run_path,
    run_to_json,
)
from gemmbench.records.schema import to_row
from gemmbench.records.table import records_to_csv

FIXTURES = Path(__file__).parent / "fixtures"


def test_csv_round_trip_keeps_every_column(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text(records_to_csv(sample_records()))
    loaded = load_run(path)
    first = loaded.records[0]
    expected = sample_records()[0]
    assert first.kernels == tuple(KernelRun(k.name) for k in expected.kernels)  # CSV keeps names only
    assert first == replace(expected, kernels=first.kernels)
    assert loaded.records[1] == sample_records()[1]
    assert loaded.records[2].rel_err is None  # NaN is written as an empty cell


def test_a_layer_row_round_trips_through_the_run_file_and_its_csv(tmp_path):
    alone = replace(sample_records()[0], kernels=None)  # a CSV keeps kernel names only
    run = Run(Provenance(context="norm"), [alone, replace(alone, context="norm", tflops=None, gbps=None)])
    (tmp_path / "run.json").write_text(run_to_json(run))
    (tmp_path / "run.csv").write_text(records_to_csv(run.records))
    assert json.loads((tmp_path / "run.json").read_text())["schema_version"] == SCHEMA_VERSION == 2
    for name in ("run.json", "run.csv"):
        assert load_run(tmp_path / name).records == run.records, name


def test_a_csv_export_of_a_version_1_run_loads_its_rows_as_rows_alone(tmp_path):
    """Its rows held the GEMM's times alone, beside the in-context columns of that version (dropped)."""
    path = tmp_path / "v1.csv"
    lines = records_to_csv([replace(r, context="norm") for r in sample_records()]).splitlines()
    header = lines[0].split(",")
    where = header.index("context") + 1
    path.write_text(
        "\n".join(",".join([*cells[:where], value, *cells[where:]]) for cells, value in _with_column(lines)) + "\n"
    )
    assert all(r.context is None for r in load_run(path).records)
    assert [r.device for r in load_run(path).records] == [r.device for r in sample_records()]


def _with_column(lines: list[str]):
    """Each line's cells, with what a version-1 export held in its `context_device_median_us` column."""
    yield lines[0].split(","), "context_device_median_us"
    for line in lines[1:]:
        yield line.split(","), "-0.2"


def test_csv_header_has_units_in_column_names():
    header = records_to_csv([]).strip().split(",")
    for column in (
        "latency_median_us",
        "device_median_us",
        "tflops",
        "gbps",
        "rel_err",
        "status",
        "reason",
        "kernels",
        "kernel_count",
        "kernel_sum_us",
    ):
        assert column in header


def test_run_file_is_written_after_every_record_and_round_trips(tmp_path):
    path = tmp_path / "run.json"
    run = Run(Provenance(device_name="test"), planned=3, complete=False)
    writer = RunWriter(path, run)
    assert json.loads(path.read_text())["records"] == []
    for count, record in enumerate(sample_records(), start=1):
        run.records.append(record)
        writer.flush()
        assert len(json.loads(path.read_text())["records"]) == count
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and doc["records"][2]["rel_err"] is None
    loaded = load_run(path)
    assert loaded.provenance == Provenance(device_name="test") and (loaded.planned, loaded.complete) == (3, False)
    assert loaded.records[:2] == sample_records()[:2]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def _plain_json(run: Run) -> str:
    doc = {"schema": "gemmbench.run", "schema_version": SCHEMA_VERSION, "provenance": run.provenance.to_dict()}
    doc |= {"planned": run.planned, "complete": run.complete, "records": [to_row(r) for r in run.records]}
    if run.groups:
        doc["groups"] = [to_row(g) for g in run.groups]
    return json.dumps(doc, indent=1) + "\n"


@pytest.mark.parametrize("fixture", ["h200_deepseek_v3_sm90.json", "h200_groups_context_norm.json"])
def test_the_run_file_is_the_json_of_the_whole_document(fixture):
    run = load_run(FIXTURES / fixture)
    assert run_to_json(run) == _plain_json(run)
    unknown = Run(Provenance.from_dict({"a": 1}))  # no rows, and a key no field holds
    assert run_to_json(unknown) == _plain_json(unknown)


def test_values_with_newlines_and_quotes_are_laid_out_as_json_lays_them_out(tmp_path):
    """json escapes a newline inside a string: the writer's indentation of a nested value touches only the
    newlines of its layout."""
    odd = 'line one\nline "two"\t\u00b5s'
    provenance = Provenance.from_dict({"command": odd, "note": {"lines": [odd, {}], "empty": []}})
    records = [replace(record, reason=odd) for record in sample_records()]
    run = Run(provenance, records, groups=load_run(FIXTURES / "h200_groups_context_norm.json").groups)
    RunWriter(tmp_path / "run.json", run)
    assert (tmp_path / "run.json").read_text() == run_to_json(run) == _plain_json(run)


def test_the_writer_follows_a_list_that_shrinks(tmp_path):
    run = Run(Provenance(), sample_records())
    writer = RunWriter(tmp_path / "run.json", run)
    run.records = run.records[:1]
    writer.flush()
    assert (tmp_path / "run.json").read_text() == _plain_json(run)


def test_the_writer_encodes_a_row_once_and_a_replaced_row_again(tmp_path, monkeypatch):
    encoded, encode = [], runfile.encode_row
    monkeypatch.setattr(runfile, "encode_row", lambda row: encoded.append(row) or encode(row))
    run = Run(Provenance(), planned=3)
    writer = RunWriter(tmp_path / "run.json", run)
    for record in sample_records():
        run.records.append(record)
        writer.flush()
    assert [id(r) for r in encoded] == [id(r) for r in run.records]  # each once, though written four times
    run.records[1] = replace(run.records[1], kernel_count=7)
    writer.flush()
    assert encoded[-1].kernel_count == 7 and len(encoded) == 4
    assert (tmp_path / "run.json").read_text() == _plain_json(run)


def test_gpu_recorded_fixture_loads():
    run = load_run(FIXTURES / "h200_deepseek_v3_sm90.json")
    assert run.provenance.arch == "sm90" and len(run.records) == 9
    assert all(r.kernels for r in run.records)


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "invalid JSON"),
        ('{"schema": "other"}', "not a gemmbench run file"),
        ('{"schema": "gemmbench.run", "schema_version": 99}', "newer than this gemmbench"),
        (
            '{"schema": "gemmbench.run", "schema_version": 1, "records": [{"model": "x"}]}',
            "record 1 has no field 'gemm'",
        ),
    ],
)
def test_unreadable_run_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(GemmbenchError, match=message):
        load_run(path)


def test_missing_run_file_and_foreign_csv(tmp_path):
    with pytest.raises(GemmbenchError, match="does not exist"):
        load_run(tmp_path / "nope.json")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(GemmbenchError, match="not a gemmbench CSV"):
        load_run(tmp_path / "x.csv")


def test_new_run_paths_are_unique(tmp_path):
    first = new_run_path(tmp_path, Provenance(device_name="NVIDIA H100 80GB HBM3"))
    first.write_text("{}")
    second = new_run_path(tmp_path, Provenance(device_name="NVIDIA H100 80GB HBM3"))
    assert first != second and "nvidia-h100-80gb-hbm3" in first.name


def test_writable_checks(tmp_path):
    ensure_writable_file("-")
    ensure_writable_file(str(tmp_path / "new.csv"))
    with pytest.raises(GemmbenchError, match="does not exist"):
        ensure_writable_file(str(tmp_path / "missing" / "x.csv"))
    with pytest.raises(GemmbenchError, match="is a folder"):
        ensure_writable_file(str(tmp_path))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(GemmbenchError, match="cannot create the results folder"):
        ensure_writable_dir(blocker / "sub")
    assert ensure_writable_dir(tmp_path / "a" / "b").is_dir()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_writable_checks_try_for_real_where_permission_bits_say_nothing(tmp_path):
    # /proc is read-only for every user, root included (whom os.access would answer yes for many folders)
    with pytest.raises(GemmbenchError, match="the results folder /proc/self is not writable"):
        ensure_writable_dir(Path("/proc/self"))
    with pytest.raises(GemmbenchError, match="cannot write /proc/self/x.csv: folder /proc/self is not writable"):
        ensure_writable_file("/proc/self/x.csv")
    ensure_writable_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind


def test_a_fallback_file_is_new_and_named_after_the_path_asked_for(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "rows.csv").write_text("the user's\n")
    first, second = write_fallback("rows.csv", "a\n"), write_fallback("rows.csv", "b\n")
    assert first != second and first.name.startswith("rows.") and first.suffix == ".csv"
    assert (first.read_text(), second.read_text()) == ("a\n", "b\n")
    assert (tmp_path / "rows.csv").read_text() == "the user's\n"


def test_a_run_file_that_cannot_be_written_anywhere_is_one_error_and_leaves_no_empty_file(tmp_path, monkeypatch):
    import tempfile

    from gemmbench.records.runfile import RunWriter

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temporary"))
    (tmp_path / "temporary").mkdir()

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runfile, "write_atomically", full_disk)
    monkeypatch.setattr("gemmbench.files.write_atomically", full_disk)
    with pytest.raises(GemmbenchError, match="nor a copy in the temporary folder \\(No space left on device\\)"):
        RunWriter(tmp_path / "run.json", runfile.Run(Provenance(), []))
    assert list((tmp_path / "temporary").iterdir()) == []


def test_an_existing_file_is_writable_in_a_folder_that_is_not(tmp_path):
    ensure_writable_file("/dev/null")  # /dev takes no new file from a user, but /dev/null takes writes


def test_an_export_never_overwrites_a_run_file(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"schema": "gemmbench.run", "records": []}, indent=1))
    with pytest.raises(GemmbenchError, match="is a gemmbench run file: an export over it would lose its rows"):
        ensure_writable_file(str(run))
    old_csv = tmp_path / "old.csv"
    old_csv.write_text("model,m\n")
    ensure_writable_file(str(old_csv))  # an earlier export is replaced, as asked


def test_run_files_get_the_mode_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "run.json"
        RunWriter(path, Run(Provenance()))
        assert (path.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)


def test_a_malformed_group_record_is_named(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(
        json.dumps(
            {
                "schema": "gemmbench.run",
                "schema_version": 1,
                "records": [],
                "groups": [
                    {
                        "model": "m",
                        "group": "g",
                        "m": 1,
                        "k": 8,
                        "backend": "fake",
                        "status": "ok",
                        "members": [{"gemm": 3}],
                    }
                ],
            }
        )
    )
    with pytest.raises(GemmbenchError, match=r"group record 1 has members = .*: not a list of objects with gemm"):
        load_run(path)


def test_loading_a_large_run_resolves_each_record_type_once(tmp_path, monkeypatch):
    """Resolving a record type's annotations cost 0.7 ms a row (a 63 MB run took 25 s to recommend from, 4.6
    s with them resolved once): the work per row must not include it."""
    import typing

    from gemmbench.records import schema

    doc = json.loads((Path(__file__).parent / "fixtures" / "h200_deepseek_v3_sm90.json").read_text())
    calls = []
    resolve = typing.get_type_hints
    monkeypatch.setattr(typing, "get_type_hints", lambda *args, **kw: calls.append(args[0]) or resolve(*args, **kw))
    counts = []
    for copies in (1, 50):
        path = tmp_path / f"run{copies}.json"
        path.write_text(json.dumps({**doc, "records": doc["records"] * copies}))
        schema._type_hints.cache_clear()
        schema.columns.cache_clear()
        calls.clear()
        assert len(load_run(path).records) == len(doc["records"]) * copies
        counts.append(len(calls))
    assert counts[0] == counts[1]  # the same few record types resolved, however many rows
