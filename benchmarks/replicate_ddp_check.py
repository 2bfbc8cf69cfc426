"""End-to-end check of the replicate pipeline's DDP path: `torchrun --nproc_per_node N` ranks (NCCL on CUDA, gloo on
CPU) on a tiny randomly initialised XLM-R with generated data (tests/replicate/tiny_assets.py; no hub, no network).

Every rank runs, in one process group:
1. the pipeline itself (replicate.pipeline.run_recipe, as `python -m replicate.run` under torchrun): phase 2 on
   commonsenseqa, phase 3 on pawsx (trained) and tatoeba (retrieval), the recipe's bf16 autocast; counts who writes
   replication.json and the phase-2 encoder (rank 0 only). `--compile`: a second run with the encoder compiled.
2. DDP gradient averaging: one fixed batch of 8 split over the ranks, DDP-averaged gradients vs a single-process
   backward over the whole batch (fp32, dropout off): relative error.
3. train_phase (the pipeline's training loop) with DDP for `--steps` steps, then every rank's weights vs rank 0's;
   and check 2's fixed batch trained for 30 steps (AdamW, lr 3e-3): its loss (averaged over ranks) must fall.

Writes replicate_ddp_check.json (every check, its value and limit) to $OUT (if set) else benchmarks/results/; exits 1
when a check fails.

    python3 -P benchmarks/replicate_ddp_check.py --nproc 2            # on 2 GPUs: NCCL, ~30-60 s
    python3 -P benchmarks/replicate_ddp_check.py --nproc 2 --device cpu   # anywhere: gloo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.replicate_throughput import _free_port, dist_env, run_group  # noqa: E402

logger = logging.getLogger("replicate_ddp_check")
GRAD_RTOL = 1e-4  # DDP-averaged vs whole-batch gradients, fp32 (TF32 off): only summation order differs
WEIGHT_ATOL = 1e-6  # identical gradients and optimiser steps on every rank: expected exactly 0
FIXED_STEPS, FIXED_LR = 30, 3e-3  # check 2's fixed batch: enough for the tiny model to fit it


def _recipe(work: Path, compile_model: bool) -> dict[str, Any]:
    from tests.replicate.tiny_assets import build_tiny_xlmr, tiny_recipe_dict, write_task_data

    model = build_tiny_xlmr(work / "tiny-xlmr")
    data = write_task_data(work / "data", n_train=48)
    d = tiny_recipe_dict(model, data, intermediate=["commonsenseqa"], targets=["pawsx", "tatoeba"])
    d["train"].update(precision="bf16", max_steps=4, compile=compile_model)  # bf16: the recipe's autocast on CUDA
    return d


# --- one rank ---------------------------------------------------------------------------------------------------------


def _count_calls(module: Any, name: str, counts: dict[str, int]) -> None:
    fn = getattr(module, name)
    counts[name] = 0

    def wrapped(*a: Any, **kw: Any) -> Any:
        counts[name] += 1
        return fn(*a, **kw)

    setattr(module, name, wrapped)


def _flat(model: Any) -> Any:
    import torch

    return torch.cat([p.detach().float().flatten().cpu() for p in model.parameters()])


def _worker(args: argparse.Namespace) -> int:
    import torch

    from replicate import pipeline
    from replicate.config import recipe_from_dict
    from replicate.dist import init_distributed, shutdown
    from replicate.features import featurize
    from replicate.model import build_model, collate, drop_full_mask, load_encoder
    from replicate.train import clip_and_step, make_optimizer, train_phase

    env = init_distributed(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    report: dict[str, Any] = {"rank": env.rank, "world": env.world, "device": str(env.device)}
    try:
        d = json.loads(Path(args.recipe).read_text())
        counts: dict[str, int] = {}
        _count_calls(pipeline, "write_json", counts)
        _count_calls(pipeline, "save_encoder", counts)
        runs = [("plain", False)] + ([("compiled", True)] if d["train"]["compile"] else [])
        for label, comp in runs:
            d["train"]["compile"] = comp
            t0 = time.perf_counter()
            doc = pipeline.run_recipe(recipe_from_dict(d), Path(args.run_out) / label, env)
            report[f"pipeline_{label}"] = {
                "seconds": round(time.perf_counter() - t0, 2),
                "writes": dict(counts),
                "phase2": doc["phase2"],
                "cells": [(c["target"], c["avg"]) for c in doc["cells"]],
            }
            counts.update(dict.fromkeys(counts, 0))

        recipe = recipe_from_dict(d)
        spec = dataclasses.replace(recipe.train, precision="fp32", compile=False)  # exact comparisons: no autocast
        runner = pipeline.Runner(recipe, Path(args.run_out) / "direct", env)
        task = recipe.task("pawsx")
        feats = featurize(task, runner.tokenizer, runner.examples(task, "train", "en"), train=True)
        pad = runner.tokenizer.pad_token_id

        def fresh() -> Any:
            torch.manual_seed(7)
            encoder = load_encoder(recipe.model, attn_implementation=spec.attn_implementation)
            return build_model(encoder, [task]).to(env.device)

        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [env.device.index] if env.device.type == "cuda" else None
        # 2. DDP-averaged gradients vs one process over the whole batch (dropout off: eval mode)
        per = 8 // env.world
        full = {k: v.to(env.device) for k, v in drop_full_mask(collate(feats[:8], pad)).items()}
        mine = collate(feats[env.rank * per : (env.rank + 1) * per], pad)
        mine = {k: v.to(env.device) for k, v in drop_full_mask(mine).items()}
        ref, model = fresh().eval(), fresh().eval()
        ref_loss, _ = ref(task.name, full)
        ref_loss.backward()
        ddp = DDP(model, device_ids=ids)
        loss, _ = ddp(task.name, mine)
        loss.backward()
        g_ref = torch.cat([p.grad.flatten() for p in ref.parameters() if p.grad is not None])
        g_ddp = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        report["grad_rel_err"] = float((g_ddp - g_ref).norm() / g_ref.norm())
        # ... then train on that fixed batch: the loss averaged over the ranks falls
        opt = make_optimizer(model, FIXED_LR, spec, env.device)
        params = [p for p in model.parameters() if p.requires_grad]
        fixed_losses = []
        for _ in range(FIXED_STEPS):
            opt.zero_grad(set_to_none=True)
            loss, _ = ddp(task.name, mine)
            loss.backward()
            clip_and_step(opt, params, spec.max_grad_norm)
            mean = loss.detach().clone()
            torch.distributed.all_reduce(mean)
            fixed_losses.append(round(float(mean) / env.world, 5))
        report["fixed_batch_losses"] = fixed_losses
        # 3. train_phase with DDP (dropout on, bucketed batches split over the ranks): identical weights on every rank
        model = fresh()
        spec.max_steps = args.steps
        res = train_phase(model, {task.name: (task, feats)}, spec, env, lr=1e-3, epochs=100.0, seed=1, pad_id=pad)
        report["train_phase"] = res.summary()
        report["weights"] = _flat(model)
        rows: list[Any] = [None] * env.world
        torch.distributed.all_gather_object(rows, report)
        if env.is_main:
            w0 = rows[0]["weights"]
            for r in rows:
                r["weight_max_abs_diff_vs_rank0"] = float((r.pop("weights") - w0).abs().max())
            Path(args.ranks_out).write_text(json.dumps(rows, default=str))
    finally:
        shutdown(env)
    return 0


# --- the launcher -----------------------------------------------------------------------------------------------------


def _checks(rows: list[dict[str, Any]], run_dir: Path, world: int, runs: list[str]) -> dict[str, dict[str, Any]]:
    def check(ok: bool, value: Any, expect: str) -> dict[str, Any]:
        return {"ok": bool(ok), "value": value, "expect": expect}

    out: dict[str, dict[str, Any]] = {}
    out["ranks_reported"] = check(len(rows) == world, len(rows), f"{world} ranks")
    for label in runs:
        p = run_dir / label / "replication.json"
        doc = json.loads(p.read_text()) if p.exists() else {}
        p2 = doc.get("phase2", {}).get("commonsenseqa-s1", {})
        out[f"{label}_replication_json"] = check(
            doc.get("environment", {}).get("world_size") == world and len(doc.get("cells", [])) == 2,
            {"world_size": doc.get("environment", {}).get("world_size"), "cells": len(doc.get("cells", []))},
            f"written, world_size {world}, 2 cells",
        )
        # commonsenseqa's effective batch is 4 (split over the ranks), max_steps 4: 16 examples seen over all ranks
        out[f"{label}_phase2_steps"] = check(
            (p2.get("steps"), p2.get("examples")) == (4, 16), [p2.get("steps"), p2.get("examples")], "[4, 16]"
        )
        enc = run_dir / label / "phase2" / "commonsenseqa-s1" / "encoder" / "config.json"
        out[f"{label}_encoder_saved"] = check(enc.exists(), str(enc.relative_to(run_dir)), "exists")
        writes = [r[f"pipeline_{label}"]["writes"] for r in rows]
        only_main = writes[0]["write_json"] > 0 and writes[0]["save_encoder"] == 1
        only_main = only_main and all(w["write_json"] == 0 and w["save_encoder"] == 0 for w in writes[1:])
        out[f"{label}_writes_rank0_only"] = check(only_main, writes, "rank 0 writes, the others none")
    errs = [r["grad_rel_err"] for r in rows]
    out["ddp_grad_vs_whole_batch"] = check(max(errs) < GRAD_RTOL, errs, f"relative error < {GRAD_RTOL}")
    losses = rows[0]["fixed_batch_losses"]
    out["fixed_batch_loss_falls"] = check(
        losses[-1] < 0.5 * losses[0], [losses[0], losses[-1]], "last < half the first"
    )
    diffs = [r["weight_max_abs_diff_vs_rank0"] for r in rows]
    out["train_phase_weights_identical"] = check(max(diffs) <= WEIGHT_ATOL, diffs, f"max |w_r - w_0| <= {WEIGHT_ATOL}")
    steps = [r["train_phase"]["steps"] for r in rows]
    out["train_phase_steps"] = check(len(set(steps)) == 1, steps, "the same on every rank")
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, default=2, help="ranks (GPUs)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--compile", action="store_true", help="also run the pipeline with the encoder compiled")
    p.add_argument("--steps", type=int, default=20, help="train_phase steps of check 3")
    p.add_argument("--work", default=None, help="folder for the tiny model, data and runs (default: a temp folder)")
    p.add_argument("--timeout", type=float, default=400.0)
    p.add_argument("--rank-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--recipe", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ranks-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.rank_worker:
        return _worker(args)
    if args.device.startswith("cuda") and torch.cuda.device_count() < args.nproc:
        raise SystemExit(f"{args.nproc} ranks need {args.nproc} GPUs; {torch.cuda.device_count()} visible")
    t0 = time.perf_counter()
    work = Path(args.work or tempfile.mkdtemp(prefix="replicate-ddp-check-"))
    work.mkdir(parents=True, exist_ok=True)
    recipe = work / "recipe.json"
    recipe.write_text(json.dumps(_recipe(work, args.compile)))
    ranks_out = work / "ranks.json"
    ranks_out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc)]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(Path(__file__).resolve())]
    cmd += ["--rank-worker", "--device", args.device, "--recipe", str(recipe), "--steps", str(args.steps)]
    cmd += ["--run-out", str(work / "runs"), "--ranks-out", str(ranks_out)]
    env = dist_env()
    if not args.device.startswith("cuda"):
        env["CUDA_VISIBLE_DEVICES"] = ""
    try:
        proc = run_group(cmd, env, args.timeout)
    except RuntimeError as e:  # past the timeout: the ranks were killed; report what is known
        proc = subprocess.CompletedProcess(cmd, 124, "", str(e))
    rows = json.loads(ranks_out.read_text()) if ranks_out.exists() else []
    runs = ["plain"] + (["compiled"] if args.compile else [])
    checks = _checks(rows, work / "runs", args.nproc, runs) if rows else {}
    # ranks.json is gathered after all the work: with every check passed, a nonzero exit can only come from the
    # ranks' teardown (reported as exit_clean, not failed on: gloo on the CPU sometimes aborts there)
    ok = bool(checks) and all(c["ok"] for c in checks.values())
    doc = {
        "benchmark": "replicate_ddp_check",
        "ok": ok,
        "backend": "nccl" if args.device.startswith("cuda") else "gloo",
        "world_size": args.nproc,
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "returncode": proc.returncode,
        "exit_clean": proc.returncode == 0,
        "checks": checks,
        "ranks": rows,
        "stderr_tail": None if ok and proc.returncode == 0 else proc.stderr[-4000:],
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    out_dir = Path(os.environ.get("OUT") or REPO / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "replicate_ddp_check.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    for name, c in checks.items():
        print(f"{'ok  ' if c['ok'] else 'FAIL'} {name}: {c['value']} (expect {c['expect']})")  # noqa: T201
    status = "passed" if ok else "FAILED"
    status += f", torchrun exit {proc.returncode}" + ("" if proc.returncode == 0 else " (at teardown)" if ok else "")
    print(f"replicate DDP check, {doc['backend']} x{args.nproc}: {status}, {doc['wall_seconds']} s")  # noqa: T201
    if not ok and not checks:
        print(proc.stderr[-4000:], file=sys.stderr)  # noqa: T201
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
