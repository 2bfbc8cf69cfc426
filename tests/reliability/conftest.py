"""Fixtures of the reliability suite: the loopback arXiv server (from tests/retrieve) and the outcome probe.

Every case records what happened through `probe(kind, case)`: the record goes into the JUnit XML as properties and,
when $CLAIMSCOPE_RELIABILITY_LOG is set, as one JSON line per case (what benchmarks/reliability.py counts).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import pytest

from tests.retrieve.conftest import clock, fake_arxiv, fake_pdfs, make_source, online_settings  # noqa: F401

LOG_ENV = "CLAIMSCOPE_RELIABILITY_LOG"


@dataclass
class Outcome:
    kind: str
    case: str
    test: str = ""
    passed: bool = False
    crash: bool = False  # an exception that is not a typed ClaimscopeError, or a traceback from the CLI
    data_lost: bool = False  # a half-written or missing file after a kill, or a verdict that changed
    resumed: bool = False
    identical: bool | None = None  # verdicts of a resumed run equal those of the clean run
    error: str | None = None  # the one-line message the user saw, when the input was refused
    notes: list[str] = field(default_factory=list)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item._reliability_call = rep  # type: ignore[attr-defined]
        if rep.failed and call.excinfo is not None and not call.excinfo.errisinstance(AssertionError):
            for o in getattr(item, "_reliability_outcomes", []):
                o.crash = True


@pytest.fixture
def probe(request):
    outcomes: list[Outcome] = []
    request.node._reliability_outcomes = outcomes

    def make(kind: str, case: str) -> Outcome:
        o = Outcome(kind=kind, case=case, test=request.node.nodeid)
        outcomes.append(o)
        return o

    yield make
    rep = getattr(request.node, "_reliability_call", None)
    passed = bool(rep is not None and rep.passed)
    log = os.environ.get(LOG_ENV)
    for o in outcomes:
        o.passed = passed
        request.node.user_properties.append((f"reliability:{o.kind}:{o.case}", json.dumps(asdict(o))))
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(o)) + "\n")
