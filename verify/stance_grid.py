"""Run stance-training variants side by side and tabulate how well each tells SUPPORT from CONTRADICT (issue #5).

Standalone like train_stance.py (no claimscope, no pydantic), for the GPU machine::

    python3 -P verify/stance_grid.py --scifact .data/scifact --base .data/minilm --out "$OUT" --work /tmp/grid \
        --device cuda

Each variant is one ``train_stance.py`` process writing its adapter, ``training.json``, ``oof.jsonl`` and
``train.log`` to ``WORK/<variant>/`` (``--work``, default OUT). With a separate ``--work`` the variant folders are
packed into ``OUT/runs-K.tar`` archives of at most ``--pack-mb`` MB (the device tool returns at most 8 files of
16 MiB from $OUT), so OUT holds only the summaries and the archives; ``tar -xf runs-K.tar`` gives ``<variant>/``.

The model is small enough that one process leaves the GPU mostly idle (Python and kernel-launch bound), so the
variants run concurrently (``--parallel``); a run still going at ``--deadline`` seconds is stopped and reported with
the epochs its log shows. ``OUT/summary.json`` and ``OUT/summary.txt`` hold, per variant, the held-out numbers of
the saved checkpoint (sentence pairs of the 162 held-out train claims and all their pairs), the best epoch by macro-F1
and by SUPPORT-vs-CONTRADICT accuracy on gold rationales, and that accuracy averaged over the second half of training
(less noisy than one epoch on ~200 pairs), beside the shipped adapter's record.
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # as in train_stance.py: verify/numbers.py must not shadow the standard library's numbers

import argparse  # noqa: E402
import ast  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

logger = logging.getLogger("stance_grid")

HERE = Path(__file__).resolve().parent
SHIPPED = HERE / "models" / "stance-minilm-lora" / "training.json"

# Every variant: the shipped recipe (10 epochs, batch 64, LoRA r 16 on every linear layer, negation augmentation) at
# its chosen learning rate 8e-4, with one or two changes. "base" should repeat the shipped lr-8e-4 run's history.
COMMON = ["--seed", "13", "--epochs", "10", "--lr", "8e-4"]
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "base_seed29": ["--seed", "29"],  # seed noise of the held-out numbers (the split changes too)
    "noneg": ["--no-negation"],  # no "not => CONTRADICT" shortcut to learn
    "antonym": ["--no-negation", "--antonyms", "support"],  # direction swaps instead of negations
    "antonym_double": ["--antonyms", "double"],  # negations + swaps + negated swaps: "not" no longer means CONTRADICT
    "scloss": ["--sc-loss", "1.0", "--select", "sc_f1"],  # an extra S-vs-C loss, checkpoint chosen on S/C F1
    "top1": ["--full-top", "1", "--select", "sc_f1"],  # top encoder layer + pooler trained in full (fp16 file)
    "combo": ["--antonyms", "double", "--sc-loss", "1.0", "--full-top", "1", "--select", "sc_f1"],
}
KEYS = ["rationale_sc_accuracy", "rationale_always_support", "macro_f1", "support_f1", "contradict_f1", "log_loss"]


def command(name: str, args: argparse.Namespace) -> list[str]:
    out = Path(args.work) / name
    return [sys.executable, "-P", str(HERE / "train_stance.py"), "--scifact", args.scifact, "--base", args.base,
            "--out", str(out), "--threads", str(args.threads), *(["--device", args.device] if args.device else []),
            *COMMON, *VARIANTS[name], *args.extra]


def run_all(names: list[str], args: argparse.Namespace) -> dict[str, dict]:
    """Start up to `parallel` runs at a time; stop whatever is still running at the deadline."""
    t0 = time.time()
    pending = list(names)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    status: dict[str, dict] = {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            out = Path(args.work) / name
            out.mkdir(parents=True, exist_ok=True)
            cmd = command(name, args)
            log = open(out / "train.log", "w", encoding="utf-8")  # noqa: SIM115 - closed when the run ends
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time())
            status[name] = {"command": " ".join(cmd[1:])}
            logger.info("started %s", name)
        time.sleep(0.5)
        for name, (proc, started) in list(running.items()):
            late = time.time() - t0 > args.deadline
            if proc.poll() is None and not late:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                status[name]["stopped_at_deadline"] = True
            status[name] |= {"returncode": proc.returncode, "wall_s": round(time.time() - started, 1)}
            logger.info("%s finished rc %s in %.0fs", name, proc.returncode, time.time() - started)
            del running[name]
        if time.time() - t0 > args.deadline and pending:
            for name in pending:
                status[name] = {"command": " ".join(command(name, args)[1:]), "not_started": True}
            pending = []
    return status


def history_view(runs: list[dict]) -> dict:
    """Best epoch by macro-F1 and by rationale S/C accuracy, and that accuracy over the second half of training."""
    hist = [h for r in runs for h in r.get("history", [])]
    if not hist:
        return {}
    by_f1 = max(hist, key=lambda h: h["macro_f1"])
    by_sc = max(hist, key=lambda h: h.get("rationale_sc_accuracy", 0.0))
    late = [h for r in runs for h in r.get("history", [])[len(r.get("history", [])) // 2:]]
    return {"best_macro_f1": round(by_f1["macro_f1"], 4), "best_macro_f1_step": by_f1["step"],
            "sc_acc_at_best_macro_f1": round(by_f1.get("rationale_sc_accuracy", 0.0), 4),
            "best_sc_accuracy": round(by_sc.get("rationale_sc_accuracy", 0.0), 4), "best_sc_step": by_sc["step"],
            "sc_accuracy_late_mean": round(sum(h.get("rationale_sc_accuracy", 0.0) for h in late) / len(late), 4)}


_EVAL_LINE = re.compile(r" eval lr \S+ r \d+ step \d+: (\{.*\})\s*$")


def history_from_log(log: Path) -> list[dict]:
    """The per-epoch held-out evaluations a run logged (for a run stopped before it wrote training.json)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _EVAL_LINE.search(line)
        if m:
            out.append(ast.literal_eval(m.group(1)))
    return out


def summarise(record: dict, folder: Path | None) -> dict:
    sel = record.get("holdout_metrics_sentence_pairs", {})
    oof = record.get("oof_metrics_all_holdout_pairs", {})
    row = {"selected": record.get("selected"), "seconds": record.get("seconds"),
           "trainable_params": record.get("hyper", {}).get("trainable_params"),
           "pairs_train": record.get("data", {}).get("pairs_train"),
           "heldout_sentences": {k: round(sel[k], 4) for k in KEYS if k in sel},
           "heldout_all_pairs": {k: round(oof[k], 4) for k in KEYS if k in oof},
           "history": history_view(record.get("runs", []))}
    if folder is not None and (folder / "adapter_model.safetensors").exists():
        row["adapter_mb"] = round((folder / "adapter_model.safetensors").stat().st_size / 1e6, 2)
    return row


def table(rows: dict[str, dict]) -> str:
    head = (f"{'variant':<15} {'scAcc':>6} {'alwS':>6} {'mF1':>6} {'S_F1':>6} {'C_F1':>6} {'logL':>6} | "
            f"{'oofSC':>6} {'oofAS':>6} {'oofF1':>6} {'oofLL':>6} | {'bestSC':>6} {'lateSC':>6} {'MB':>5} "
            f"{'step':>5} {'s':>5}")
    lines = [head, "-" * len(head)]
    for name, row in rows.items():
        s, o, h = row.get("heldout_sentences", {}), row.get("heldout_all_pairs", {}), row.get("history", {})
        if not s:
            part = row.get("history_partial") or {}
            lines.append(f"{name:<15} no saved result; logged epochs: best scAcc {part.get('best_sc_accuracy')} "
                         f"late {part.get('sc_accuracy_late_mean')} best mF1 {part.get('best_macro_f1')} "
                         f"(status {row.get('status', {})})")
            continue

        def f(d: dict, k: str) -> str:
            return f"{d[k]:6.3f}" if k in d else f"{'-':>6}"

        sel = row.get("selected") or {}
        lines.append(f"{name:<15} {f(s, 'rationale_sc_accuracy')} {f(s, 'rationale_always_support')} "
                     f"{f(s, 'macro_f1')} {f(s, 'support_f1')} {f(s, 'contradict_f1')} {f(s, 'log_loss')} | "
                     f"{f(o, 'rationale_sc_accuracy')} {f(o, 'rationale_always_support')} {f(o, 'macro_f1')} "
                     f"{f(o, 'log_loss')} | {f(h, 'best_sc_accuracy')} {f(h, 'sc_accuracy_late_mean')} "
                     f"{row.get('adapter_mb', 0):5.1f} {sel.get('step', 0):5d} {row.get('seconds') or 0:5.0f}")
    lines.append("scAcc/alwS: SUPPORT-vs-CONTRADICT accuracy on gold rationale sentences of the held-out claims / the "
                 "always-SUPPORT rate; mF1, S_F1, C_F1, logL: 3-way on held-out sentence pairs at the saved "
                 "checkpoint; oof*: all held-out pairs (oof.jsonl); bestSC / lateSC: best epoch / mean of the second "
                 "half of training")
    return "\n".join(lines)


def pack(work: Path, names: list[str], out: Path, max_mb: float) -> list[str]:
    """Tar the variant folders into as few OUT/runs-K.tar files of at most max_mb MB as a greedy fill gives."""
    groups: list[tuple[float, list[str]]] = []
    for name in names:
        folder = work / name
        if not folder.exists():
            continue
        mb = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
        for i, (size, members) in enumerate(groups):
            if size + mb <= max_mb:
                groups[i] = (size + mb, members + [name])
                break
        else:
            groups.append((mb, [name]))
    written = []
    for k, (_, members) in enumerate(groups, 1):
        path = out / f"runs-{k}.tar"
        with tarfile.open(path, "w") as tar:
            for name in members:
                tar.add(work / name, arcname=name)
        written.append(f"{path.name}: {', '.join(members)}")
    return written


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scifact", required=True)
    ap.add_argument("--base", required=True, help="base model folder (.data/minilm)")
    ap.add_argument("--out", required=True, help="summaries (and, with --work elsewhere, the packed runs)")
    ap.add_argument("--work", default=None, help="folder for the variant runs (default: OUT, nothing packed)")
    ap.add_argument("--pack-mb", type=float, default=15.0, help="largest archive of runs written to OUT")
    ap.add_argument("--device", default=None)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    ap.add_argument("--parallel", type=int, default=len(VARIANTS), help="runs at a time")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads per run")
    ap.add_argument("--deadline", type=float, default=250.0, help="seconds after which unfinished runs are stopped")
    ap.add_argument("--extra", default="", help="extra train_stance.py arguments for every run (smoke tests)")
    args = ap.parse_args(argv)
    args.extra = args.extra.split()
    args.work = args.work or args.out
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    status = run_all(names, args)
    rows: dict[str, dict] = {}
    if SHIPPED.exists():
        rows["shipped"] = summarise(json.loads(SHIPPED.read_text()), SHIPPED.parent) | {"status": "reference"}
    work = Path(args.work)
    for name in names:
        rec = work / name / "training.json"
        if rec.exists():
            rows[name] = summarise(json.loads(rec.read_text()), work / name) | {"status": status[name]}
        else:  # stopped or failed: what its log shows, no saved adapter
            hist = history_from_log(work / name / "train.log")
            rows[name] = {"status": status[name], "history_partial": history_view([{"history": hist}])}
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    text = table(rows)
    packed = pack(work, names, out, args.pack_mb) if work.resolve() != out.resolve() else []
    if packed:
        text += "\narchives: " + "; ".join(packed)
    (out / "summary.txt").write_text(text + "\n")
    logger.info("summary (%s):\n%s", out / "summary.txt", text)
    return 0 if all(s.get("returncode") == 0 for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
