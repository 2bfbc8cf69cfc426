"""SIGKILL `claimscope run` at chosen and random points, resume it, and compare with an uninterrupted run.

Inputs are small and real: two pages of examples/papers/2005.13013v1.pdf, one corrupt paper (must become a gap, not
a failure) and one paper whose text is HTML/script (must show as text in report.html).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .checks import half_written, temp_leftovers
from .hostile import SCRIPT_TEXT, excerpt_pdf, hostile_pdf, script_pdf
from .registry import KILL_POINTS_FAST, KILL_POINTS_SLOW, REVERIFY_KILL_POINTS_FAST, REVERIFY_KILL_POINTS_SLOW

ROOT = Path(__file__).resolve().parents[2]
CLAIMS = {
    "title": "Reliability fixture",
    "claims": [
        {"id": "k1", "claim": "Intermediate-task training on English tasks improves zero-shot cross-lingual transfer.",
         "cited": ["2005.13013v1"]},
        {"id": "k2", "claim": "Using a set of 7 intermediate language understanding tasks, the study evaluates "
                              "transfer on the XTREME benchmark.", "cited": "2005.13013v1"},
        {"id": "k3", "claim": "The corrupt paper reports a 9.9 point gain.", "cited": "2104.07412v1"},
        {"id": "k4", "claim": f"Our model {SCRIPT_TEXT}", "cited": "2104.07413v1"},
    ],
}
BAD_PAPER = "2104.07412v1"
SCRIPT_PAPER = "2104.07413v1"


def _command(ws: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "claimscope.cli", "-q", "run", str(ws / "claims.json"), "--out", str(out),
            "--papers", str(ws / "papers"), "--cache", str(ws / "cache"), "--preset", "fast",
            "--stance-model", "lexical"]


def _env(ws: Path) -> dict[str, str]:
    return {**os.environ, "CLAIMSCOPE_HOME": str(ws / "home"), "TOKENIZERS_PARALLELISM": "false"}


def run_to_end(ws: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_command(ws, out), env=_env(ws), capture_output=True, text=True, timeout=600, cwd=ws)


def verdict_summary(out: Path) -> list[tuple]:
    rows = []
    for line in (out / "verdicts.jsonl").read_text().splitlines():
        v = json.loads(line)
        full = v.get("full_text_verdict") or {}
        rows.append((v["claim_id"], v["label"], round(v["confidence"], 4),
                     tuple(e["passage_id"] for e in v["evidence"]), full.get("label")))
    return rows


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("killws")
    papers = ws / "papers"
    papers.mkdir()
    (papers / "2005.13013v1.pdf").write_bytes(excerpt_pdf([0, 1]))
    (papers / f"{BAD_PAPER}.pdf").write_bytes(hostile_pdf("corrupt", ws))
    (papers / f"{SCRIPT_PAPER}.pdf").write_bytes(script_pdf())
    (ws / "claims.json").write_text(json.dumps(CLAIMS, indent=1))
    return ws


@pytest.fixture(scope="module")
def clean(ws) -> tuple[Path, float]:
    out = ws / "clean"
    t0 = time.perf_counter()
    proc = run_to_end(ws, out)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, seconds


def test_one_bad_paper_among_good_ones_exits_0_with_a_gap(ws, clean, probe):
    o = probe("input", "bad_paper_in_run")
    out, _ = clean
    manifest = json.loads((out / "run.json").read_text())
    gaps = {g["item"]: g["reason"] for g in manifest["gaps"]}
    o.error = gaps.get(BAD_PAPER)
    assert BAD_PAPER in gaps and "not a readable PDF" in gaps[BAD_PAPER]
    assert "\n" not in gaps[BAD_PAPER] and f"{BAD_PAPER}.pdf" in gaps[BAD_PAPER]
    report = (out / "report.md").read_text()
    assert BAD_PAPER in report
    assert {v[0] for v in verdict_summary(out)} == {"k1", "k2", "k3", "k4"}
    assert half_written(out) == [] and temp_leftovers(out) == []


def test_html_in_paper_and_claim_renders_as_text(ws, clean, probe):
    o = probe("input", "html_script")
    out, _ = clean
    html = (out / "report.html").read_text()
    o.notes.append(f"report.html {len(html)} chars")
    assert '<script>alert("pwned")</script>' not in html
    assert "<img src=x" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(" in html  # shown, escaped
    assert html.count("<script") == html.count("</script>") <= 2  # only the report's own (CSP-hashed) script
    verdicts = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
    k4 = next(v for v in verdicts if v["claim_id"] == "k4")
    assert any("<script>" in e["quote"] and e["paper"] == SCRIPT_PAPER for e in k4["evidence"])


def _run_and_kill(command: list[str], ws: Path, point: str, cond, o) -> None:  # type: ignore[no-untyped-def]
    """Start `command`, SIGKILL it once `cond()` holds (or let it finish), and note which happened in `o`."""
    with open(ws / f"{point}.stderr", "w") as err:
        proc = subprocess.Popen(command, env=_env(ws), stdout=subprocess.DEVNULL, stderr=err, cwd=ws)
        try:
            t0 = time.monotonic()
            while proc.poll() is None and not cond():
                time.sleep(0.001)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                o.notes.append(f"killed after {time.monotonic() - t0:.2f}s")
            else:
                o.notes.append(f"finished (rc {proc.returncode}) before the kill point")
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()


def _kill_condition(point: str, out: Path, rng: random.Random, clean_seconds: float):  # type: ignore[no-untyped-def]
    deadline = {"t": None}
    files = {
        "claims_written": lambda: (out / "claims.jsonl").exists(),
        "retrieve_running": lambda: any((out / "papers").glob("*/")),
        "verify_started": lambda: (out / "passages.jsonl").exists(),
        "index_saving": lambda: (out / "index.tmp").exists() or (out / "index").exists(),
        "verdicts_written": lambda: (out / "verdicts.jsonl").exists(),
        "report_writing": lambda: (out / "report.md").exists(),
    }
    if point in files:
        extra = rng.uniform(0, 1.5) if point == "verify_started" else 0.0

        def cond() -> bool:
            if deadline["t"] is None and files[point]():
                deadline["t"] = time.monotonic() + extra
            return deadline["t"] is not None and time.monotonic() >= deadline["t"]

        return cond
    delay = rng.uniform(0.5, max(1.0, clean_seconds * 0.6))  # the clean run paid cold caches
    start = time.monotonic()
    return lambda: time.monotonic() - start >= delay


def kill_and_resume(ws: Path, clean: tuple[Path, float], point: str, o) -> None:  # type: ignore[no-untyped-def]
    clean_out, clean_seconds = clean
    out = ws / f"killed_{point}"
    rng = random.Random(f"claimscope-{point}")
    cond = _kill_condition(point, out, rng, clean_seconds)
    _run_and_kill(_command(ws, out), ws, point, cond, o)
    stderr = (ws / f"{point}.stderr").read_text()
    assert "Traceback" not in stderr, stderr[-3000:]
    lost = half_written(out)
    o.notes += [f"after kill: {p}" for p in lost] + [f"leftover after kill: {p}" for p in temp_leftovers(out)]
    o.data_lost = bool(lost)
    assert lost == []

    resumed = run_to_end(ws, out)
    o.resumed = resumed.returncode == 0
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    lost = half_written(out)
    left = temp_leftovers(out)
    o.notes += [f"after resume: {p}" for p in lost + left]
    same = verdict_summary(out) == verdict_summary(clean_out)
    o.identical = same
    o.data_lost = bool(lost) or not same
    assert lost == [] and left == []
    assert same, (verdict_summary(out), verdict_summary(clean_out))
    for name in ("report.md", "report.html", "claims.csv", "verdicts.jsonl"):
        assert (out / name).stat().st_size > 0, name
    gaps = {g["item"] for g in json.loads((out / "run.json").read_text())["gaps"]}
    assert BAD_PAPER in gaps  # the gap survives the interruption


@pytest.mark.parametrize("point", KILL_POINTS_FAST)
def test_kill_then_resume_gives_the_clean_verdicts(ws, clean, point, probe):
    o = probe("fault", f"kill:{point}")
    kill_and_resume(ws, clean, point, o)


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS_SLOW)
def test_kill_then_resume_gives_the_clean_verdicts_slow(ws, clean, point, probe):
    o = probe("fault", f"kill:{point}")
    kill_and_resume(ws, clean, point, o)


# ---- reverify: add 2005.13013v2.md to the finished run, killed and run again --------------------------------------
NEW_PAPER = ROOT / "examples" / "papers" / "2005.13013v2.md"


def _reverify_command(ws: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "claimscope.cli", "-q", "reverify", str(run_dir), "--papers", str(NEW_PAPER),
            "--cache", str(ws / "cache")]


@pytest.fixture(scope="module")
def reverified(ws, clean) -> tuple[Path, float]:
    out = ws / "rv_clean"
    shutil.copytree(clean[0], out)
    t0 = time.perf_counter()
    proc = subprocess.run(_reverify_command(ws, out), env=_env(ws), capture_output=True, text=True, timeout=600,
                          cwd=ws)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert verdict_summary(out) != verdict_summary(clean[0]) or (out / "diff.json").exists()
    return out, time.perf_counter() - t0


def kill_and_rerun_reverify(ws: Path, clean, reverified, point: str, o) -> None:  # type: ignore[no-untyped-def]
    ref_out, ref_seconds = reverified
    out = ws / f"rv_{point}"
    shutil.copytree(clean[0], out)
    before = verdict_summary(out)
    rng = random.Random(f"claimscope-{point}")
    if point == "reverify_staging_started":
        cond = lambda: (out / ".reverify").exists()  # noqa: E731
    elif point == "reverify_commit_marker":
        cond = lambda: (out / ".reverify" / "COMMIT").exists()  # noqa: E731
    else:
        delay, start = rng.uniform(0.5, max(1.0, ref_seconds * 0.6)), time.monotonic()
        cond = lambda: time.monotonic() - start >= delay  # noqa: E731
    _run_and_kill(_reverify_command(ws, out), ws, point, cond, o)
    assert "Traceback" not in (ws / f"{point}.stderr").read_text()
    lost = half_written(out)
    o.notes += [f"after kill: {p}" for p in lost]
    after_kill = verdict_summary(out)
    o.data_lost = bool(lost) or after_kill not in (before, verdict_summary(ref_out))
    assert lost == []
    assert after_kill in (before, verdict_summary(ref_out)), "verdicts.jsonl mixes the old and the new run"

    rerun = subprocess.run(_reverify_command(ws, out), env=_env(ws), capture_output=True, text=True, timeout=600,
                           cwd=ws)
    o.resumed = rerun.returncode == 0
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    lost, left = half_written(out), temp_leftovers(out)
    o.notes += [f"after rerun: {p}" for p in lost + left]
    same = verdict_summary(out) == verdict_summary(ref_out)
    o.identical = same
    o.data_lost = bool(lost) or not same
    assert lost == [] and left == [] and not (out / ".reverify").exists()
    assert same, (verdict_summary(out), verdict_summary(ref_out))


@pytest.mark.parametrize("point", REVERIFY_KILL_POINTS_FAST)
def test_kill_reverify_then_rerun_gives_the_clean_verdicts(ws, clean, reverified, point, probe):
    o = probe("fault", f"kill:{point}")
    kill_and_rerun_reverify(ws, clean, reverified, point, o)


@pytest.mark.slow
@pytest.mark.parametrize("point", REVERIFY_KILL_POINTS_SLOW)
def test_kill_reverify_then_rerun_gives_the_clean_verdicts_slow(ws, clean, reverified, point, probe):
    o = probe("fault", f"kill:{point}")
    kill_and_rerun_reverify(ws, clean, reverified, point, o)
