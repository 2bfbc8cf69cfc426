"""Print how long re-rendering a finished run's report takes (target: under 2 s).

    .venv/bin/python benchmarks/report_render.py RUN_DIR [--formats md,html,csv,json] [--repeat 3]

Each repeat runs in a fresh Python process (so imports - jinja2, pydantic, matplotlib when there are plots - are
counted, as they are for `claimscope report`), and the best and worst wall times are printed, with the in-process
render time measured inside that process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from claimscope.report_templates.render import render_run
t1 = time.perf_counter()
paths = render_run(sys.argv[1], sys.argv[2].split(","))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "render_s": t2 - t1, "files": len(paths)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--formats", default="md,html,csv,json")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not (args.run_dir / "run.json").exists():
        print(f"{args.run_dir}: no run.json; pass a finished run directory", file=sys.stderr)
        return 2
    walls, inner = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-c", _CHILD, str(args.run_dir), args.formats], capture_output=True, text=True
        )
        walls.append(time.perf_counter() - t)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return 1
        inner.append(json.loads(res.stdout.strip().splitlines()[-1]))
    n_claims = sum(1 for line in (args.run_dir / "claims.jsonl").open(encoding="utf-8") if line.strip())
    plots = [p for p in ("replication.json", "calibration.json") if (args.run_dir / p).exists()]
    print(f"run: {args.run_dir} ({n_claims} claims; optional inputs: {', '.join(plots) or 'none'})")
    print(f"formats: {args.formats}; files written: {inner[0]['files']}")
    print(f"re-render, fresh process, wall: best {min(walls):.2f} s, worst {max(walls):.2f} s over {args.repeat} runs"
          f" (target < 2 s: {'met' if max(walls) < 2 else 'NOT met'})")
    print(f"  of which imports: best {min(i['import_s'] for i in inner):.2f} s; "
          f"render_run(): best {min(i['render_s'] for i in inner):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
