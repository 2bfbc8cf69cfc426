"""Run the reliability suite (tests/reliability) and print what it tried and what survived.

    .venv/bin/python benchmarks/reliability.py            # default tier (a few minutes on 2 cores)
    .venv/bin/python benchmarks/reliability.py --slow     # also the slow kill/resume points
    .venv/bin/python benchmarks/reliability.py --out benchmarks/results/reliability.json

Every hostile input and every fault is a parametrised case from tests/reliability/registry.py; each case records
its outcome (conftest.py `probe`) into a JSON-lines log that this script counts. Exit status 1 when anything
crashed, lost data or failed a check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_suite(slow: bool, extra: list[str]) -> tuple[list[dict], dict[str, int], float, int]:
    with tempfile.TemporaryDirectory(prefix="claimscope-reliability-") as tmp:
        log, junit = Path(tmp) / "outcomes.jsonl", Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}", *extra]
        if slow:
            cmd += ["-m", "not gpu and not network"]
        env = {**os.environ, "CLAIMSCOPE_RELIABILITY_LOG": str(log)}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env)
        seconds = time.perf_counter() - t0
        outcomes = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if junit.exists():
            for suite in ET.parse(junit).getroot().iter("testsuite"):
                for k in totals:
                    totals[k] += int(suite.get(k, 0))
    return outcomes, totals, seconds, proc.returncode


def summarise(outcomes: list[dict], totals: dict[str, int], seconds: float) -> dict:
    kinds = Counter(o["kind"] for o in outcomes)
    kills = [o for o in outcomes if o["case"].startswith("kill:")]
    killed = [o for o in kills if any(n.startswith("killed after") for n in o["notes"])]
    resumed = [o for o in killed if o["resumed"]]  # a kill point the run finished before is not a resume
    return {
        "inputs_tried": kinds["input"],
        "inputs_refused_with_one_line_message": sum(1 for o in outcomes if o["kind"] == "input" and o["error"]),
        "faults_injected": kinds["fault"],
        "network_faults": sum(1 for o in outcomes if o["case"].startswith("net:")),
        "processes_killed": len(killed),
        "runs_resumed": len(resumed),
        "outputs_identical_to_clean_run": sum(1 for o in resumed if o["identical"]),
        "crashes": sum(1 for o in outcomes if o["crash"]) + totals["errors"],
        "data_lost": sum(1 for o in outcomes if o["data_lost"]),
        "failed_checks": sum(1 for o in outcomes if not o["passed"] and not o["crash"]),
        "tests": totals["tests"],
        "tests_failed": totals["failures"] + totals["errors"],
        "seconds": round(seconds, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slow", action="store_true", help="include the slow variants (more kill points)")
    ap.add_argument("--out", type=Path, default=None, help="also write the summary and every outcome as JSON here")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k net)")
    args = ap.parse_args()
    outcomes, totals, seconds, rc = run_suite(args.slow, args.pytest_args)
    s = summarise(outcomes, totals, seconds)
    width = max(len(k) for k in s)
    print(f"\nclaimscope reliability suite ({'default + slow' if args.slow else 'default'} tier)")
    for k, v in s.items():
        print(f"  {k.replace('_', ' '):<{width}}  {v}")
    bad = [o for o in outcomes if o["crash"] or o["data_lost"] or not o["passed"]]
    for o in bad:
        print(f"  PROBLEM {o['case']}: crash={o['crash']} data_lost={o['data_lost']} {o['test']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": s, "outcomes": outcomes}, indent=1) + "\n")
    ok = rc == 0 and not bad and s["crashes"] == 0 and s["data_lost"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
