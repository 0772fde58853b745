"""RunStore: runs and attempts round-trip, at most once per probe, committed immediately (visible to a reader)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.redteam.attempts import Attempt
from bartizan.redteam.store import RunStore, UnknownRun


def attempt(pid: str, **kw: object) -> Attempt:
    base: dict[str, object] = dict(
        probe_id=pid, case_id="c:1", family="harmful", source="s", category="cyber", benign=False,
        transform="plain", transform_family="plain", atlas=("AML.T0054",), owasp=("LLM01:2025",),
        status="ok", response="Sure, here", verdict="success", judge="rules", judge_reasons=("compliance cue",),
        error=None, latency_ms=12.5, attempts=1, ts=1.0, meta={"flagged": False, "http_status": 200},
    )  # fmt: skip
    base.update(kw)
    return Attempt(**base)  # type: ignore[arg-type]


def test_runs_round_trip(tmp_path: Path) -> None:
    with RunStore(tmp_path / "sub" / "runs.sqlite") as store:
        a = store.start_run({"suite": "smoke", "target": "endpoint:m", "seed": 3})
        b = store.start_run({"suite": "full"}, run_id="fixed-id")
        info = store.resume(a)
        assert (info.suite, info.target, info.config["seed"]) == ("smoke", "endpoint:m", 3)
        assert {r.run_id for r in store.runs()} == {a, b} and store.runs()[0].created >= store.runs()[1].created
        with pytest.raises(UnknownRun):
            store.resume("nope")
        with pytest.raises(sqlite3.IntegrityError):
            store.start_run({}, run_id="fixed-id")


def test_attempts_round_trip_in_order_and_once_per_probe(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        rid, other = store.start_run({}), store.start_run({})
        first = attempt("p1")
        assert store.add(rid, first) is True
        assert store.add(rid, attempt("p1", verdict="refused")) is False  # never twice
        assert store.add(rid, attempt("p0", status="error", response=None, verdict="error", error="timeout"))
        assert store.add(other, attempt("p1"))  # the same probe in another run is another attempt
        got = store.attempts(rid)
        assert [a.probe_id for a in got] == ["p1", "p0"] and got[0] == first
        assert store.done_probe_ids(rid) == {"p0", "p1"} and store.done_probe_ids(other) == {"p1"}
        with pytest.raises(UnknownRun):
            store.add("missing-run", attempt("p9"))
        # committed at once: a second connection sees the rows while the store is still open
        assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 3
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.forget(rid, status="error") == 1 and store.done_probe_ids(rid) == {"p1"}
        assert store.forget(rid, {"p1"}) == 1 and store.attempts(rid) == []
    with RunStore(path) as again:  # reopening keeps everything
        assert again.done_probe_ids(other) == {"p1"}


def test_schema_version_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(ValueError, match="schema version 99"):
        RunStore(path)


text = st.text(max_size=30)


@settings(max_examples=40, deadline=None)
@given(
    response=st.none() | text,
    reasons=st.lists(text, max_size=3).map(tuple),
    atlas=st.lists(text, max_size=2).map(tuple),
    latency=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    benign=st.booleans(),
    meta=st.dictionaries(st.text(max_size=5), st.integers() | text | st.booleans(), max_size=3),
)
def test_attempt_json_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    response: str | None,
    reasons: tuple[str, ...],
    atlas: tuple[str, ...],
    latency: float,
    benign: bool,
    meta: dict[str, object],
) -> None:
    a = attempt(
        "p", response=response, judge_reasons=reasons, atlas=atlas, latency_ms=latency, benign=benign, meta=meta
    )
    assert Attempt.from_json(a.to_json()) == a
    with RunStore(tmp_path_factory.mktemp("s") / "r.sqlite") as store:
        rid = store.start_run({})
        store.add(rid, a)
        assert store.attempts(rid) == [a]
