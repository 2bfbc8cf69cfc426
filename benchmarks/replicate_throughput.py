"""Training throughput of the replication recipe on one GPU: naive vs optimised vs several cells sharing the GPU.

Randomly initialised full-size XLM-R large and base (no weights needed), the recipe's batch of 32, classification at 128
tokens and extractive QA at 384 tokens, through the replicate package's own model, heads, optimiser and autocast code:

- naive:       fp32, SDPA, fused AdamW, no compile, TF32 off: what an fp32 HF `Trainer` run does by default
               (transformers 5 + torch >= 2.8: attn "sdpa", optim "adamw_torch_fused", tf32 unset)
- naive-eager: fp32, eager attention, for-each AdamW: the slowest plain PyTorch loop
- optimised:   bf16 autocast, SDPA attention, fused AdamW, torch.compile, one process alone on the GPU
- shared:      N optimised processes training at the same time (N grid cells sharing the GPU); aggregate rate
- stacked:     N grid cells trained as one batched model (replicate.stacked: weights stacked, one compiled step over
               the N models, each cell its own batch of 32, its own AdamW state and gradient clipping); aggregate rate.
               XLM-R runs through replicate.stacked_encoder (batched matmuls, fused attention over the merged batch);
               `stacked+vmap` forces the generic vmapped step (plain matmul attention) for comparison. The matmuls
               read bf16 weight copies that the optimiser rewrites as it updates the fp32 weights, and LayerNorm
               outputs (the residual stream) are stored in bf16 (TrainSpec.bf16_residual, as Megatron-LM stores
               them); `stacked+fp32res` keeps autocast's fp32 residual stream (transformers' numerics),
               `stacked+torchadam` session 3's optimiser step
- ddp:         one optimised cell on N GPUs through the pipeline's DDP path (torchrun of this script, NCCL; gloo
               on CPU): as replicate.train.train_phase does, the recipe's batch of 32 is the effective batch, split over
               the ranks (16 per GPU on 2), the encoder compiled inside DDP; aggregate rate, MFU per GPU.
               `ddp+perrank`: every rank takes the whole batch (effective N x 32: not the recipe, the GPUs' ceiling)

A mode may carry variant flags: `optimised+cg` (CUDA graphs: compile mode reduce-overhead), `+nomask` (no attention
mask: exact when a batch has no padding, which length bucketing makes common), `+noclip` (no gradient clipping;
diagnostic only, the recipe clips at 1.0), `+nodrop` (hidden-state dropout 0; diagnostic only, the recipe's is 0.1).
`+cg` applies to `stacked` too. `--inductor KEY=VALUE` sets one of inductor's knobs for the run (diagnostics).
`--profile MODEL:TASK:MODE` prints where one step's time goes.

MFU = training FLOPs (6·N_nonemb·tokens + 12·layers·L·d·tokens for attention) / time / 989 TFLOP/s (H200 dense bf16).
Writes JSON to $OUT (if set) else benchmarks/results/, and prints a table. `--smoke` runs tiny sizes on CPU.

    python benchmarks/replicate_throughput.py            # on the H200, < 8 minutes
    python benchmarks/replicate_throughput.py --smoke     # anywhere, seconds
    python benchmarks/replicate_throughput.py --seconds 4 \
        --cases xlm-roberta-large:cls:optimised:1,xlm-roberta-large:cls:ddp:2   # 1 GPU vs DDP on 2 GPUs
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PEAK_FLOPS = 989e12  # H200 dense bf16 (no sparsity)
SIZES = {
    "xlm-roberta-large": {"layers": 24, "hidden": 1024, "heads": 16, "ffn": 4096, "vocab": 250002},
    "xlm-roberta-base": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "vocab": 250002},
    "tiny": {"layers": 2, "hidden": 64, "heads": 2, "ffn": 128, "vocab": 1000},
}
TASKS = {"cls": ("classification", 128), "qa": ("qa", 384)}
# (model, task, mode, processes) in the order run, most important first; `--budget` skips what does not start in time
FULL_PLAN = [
    ("xlm-roberta-large", "cls", "naive", 1),
    ("xlm-roberta-large", "cls", "stacked", 8),
    ("xlm-roberta-large", "cls", "optimised", 1),
    ("xlm-roberta-large", "qa", "naive", 1),
    ("xlm-roberta-large", "qa", "stacked", 4),
    ("xlm-roberta-large", "qa", "optimised", 1),
    ("xlm-roberta-base", "cls", "naive", 1),
    ("xlm-roberta-base", "cls", "stacked", 16),
    ("xlm-roberta-base", "cls", "optimised", 1),
    ("xlm-roberta-large", "cls", "stacked+vmap", 6),
    ("xlm-roberta-large", "cls", "shared", 4),
    ("xlm-roberta-large", "cls", "naive-eager", 1),
    ("xlm-roberta-base", "qa", "naive", 1),
    ("xlm-roberta-base", "qa", "optimised", 1),
]
# Variants that show where the time goes (a second run: `--cases variants`)
VARIANTS_PLAN = [
    ("xlm-roberta-large", "cls", "optimised+nomask", 1),
    ("xlm-roberta-large", "cls", "optimised+cg", 1),
    ("xlm-roberta-large", "cls", "optimised+noclip", 1),
    ("xlm-roberta-large", "cls", "shared+nomask", 4),
    ("xlm-roberta-base", "cls", "optimised+cg", 1),
    ("xlm-roberta-large", "qa", "optimised+nomask", 1),
    ("xlm-roberta-large", "qa", "shared+nomask", 2),
]


def _config(model: str, attn: str) -> Any:
    from transformers import XLMRobertaConfig

    s = SIZES[model]
    return XLMRobertaConfig(
        vocab_size=s["vocab"],
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        intermediate_size=s["ffn"],
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        attn_implementation=attn,
    )


def _flops_per_step(model: str, seq_len: int, batch: int) -> float:
    from replicate.plan import train_flops_per_token

    s = SIZES[model]
    arch = {"layers": s["layers"], "hidden": s["hidden"], "ffn": s["ffn"]}
    return train_flops_per_token(arch, seq_len) * seq_len * batch


def measure(
    model_name: str,
    task_key: str,
    mode: str,
    *,
    batch: int,
    seq_len: int,
    seconds: float,
    warmup: int,
    device: str,
    compile_model: bool,
    compile_mode: str = "default",
    go_file: str | None = None,
    ready_file: str | None = None,
    profile: bool = False,
    stack: int = 1,
    active_share: float = 0.25,
    dist_env: Any = None,
) -> dict[str, Any]:
    """Train steps on random tokens for `seconds` after `warmup` steps; returns the rates. `stack` > 1: that many
    models (grid cells) trained as one batched model, each on its own batch of `batch` sequences. `dist_env`
    (replicate.dist.DistEnv of a torchrun rank): the model in DDP as train_phase wraps it, `batch` sequences per rank;
    the ranks start timing together and stop at the same step."""
    import torch

    from replicate.config import TaskSpec, TrainSpec
    from replicate.model import build_model, drop_full_mask, load_encoder
    from replicate.stacked import StackedModels, clip_per_model
    from replicate.train import adamw, autocast, clip_and_step, make_optimizer

    base_mode, *flags = mode.split("+")
    naive = base_mode.startswith("naive")
    if "cg" in flags:
        compile_mode = "reduce-overhead"
    attn = "eager" if base_mode == "naive-eager" else "sdpa"
    dev = torch.device(device)
    kind, _ = TASKS[task_key]
    task = TaskSpec(name=task_key, kind=kind, labels=["a", "b", "c"], batch_size=batch, max_len=seq_len)
    spec = TrainSpec(
        precision="fp32" if naive else "bf16",
        fused_adamw=base_mode != "naive-eager",
        compile=compile_model and not naive,
        max_grad_norm=0.0 if "noclip" in flags else 1.0,
    )
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (PyTorch's default)
        torch.backends.cudnn.allow_tf32 = False
    stacked = None
    models = []
    for i in range(stack):
        torch.manual_seed(i)
        with dev:
            config = _config(model_name, attn)
            if "nodrop" in flags:  # diagnostic: what the hidden-state dropouts cost (the recipe keeps 0.1)
                config.hidden_dropout_prob = 0.0
            encoder = load_encoder("random", attn_implementation=attn, config=config)
            models.append(build_model(encoder, [task]))
    model = models[0]
    model.to(dev).train()
    old_optim = "torchadam" in flags or "vmap" in flags
    if stack > 1:  # K cells as one batched model (replicate.stacked), the whole forward compiled
        # session 5's step: bf16 weight copies kept by the optimiser and bf16 LayerNorm outputs (`+fp32res` keeps
        # autocast's fp32 residual stream, as transformers has it); `+torchadam` / `+vmap`: session 3's step
        low = torch.bfloat16 if spec.precision == "bf16" and dev.type == "cuda" and not old_optim else None
        stacked = StackedModels(models, compile_forward=spec.compile, use_vmap="vmap" in flags,
                                lazy_rows=not old_optim, low_precision=low,
                                low_precision_residual=low is not None and "fp32res" not in flags,
                                compile_mode=compile_mode).train()  # fmt: skip
        if old_optim:  # session 3's step: torch's fused AdamW after clip_per_model, dense embedding gradients
            opt = adamw(stacked.param_groups(spec.weight_decay), 1e-5, spec, dev)
        else:
            opt = stacked.optimizer(1e-5, spec, compiled=spec.compile and dev.type == "cuda")
    else:
        if spec.compile:
            model.encoder = torch.compile(model.encoder, mode=compile_mode)  # type: ignore[assignment]
        opt = make_optimizer(model, 1e-5, spec, dev)
    ddp = dist_env is not None and dist_env.enabled
    train_model = stacked or model
    if ddp:  # after compiling the encoder, as the pipeline does (Runner._maybe_compile, then train_phase)
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    vocab = SIZES[model_name]["vocab"]
    g = torch.Generator(device="cpu").manual_seed(1 + (dist_env.rank if ddp else 0))
    ids = torch.randint(5, vocab, (batch, seq_len), generator=g).to(dev)
    batch_t = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "nomask" in flags:
        batch_t["attention_mask"] = None  # type: ignore[assignment]
    if kind == "qa":
        batch_t["start_positions"] = torch.randint(0, seq_len, (batch,), generator=g).to(dev)
        batch_t["end_positions"] = torch.randint(0, seq_len, (batch,), generator=g).to(dev)
    else:
        batch_t["labels"] = torch.randint(0, 3, (batch,), generator=g).to(dev)
    host_ids = ids.cpu()
    active_rows = 0
    if stacked is not None:
        batch_t = drop_full_mask(batch_t)  # as train_phase_stacked does: no padding, no mask, fastest attention kernel
        if stacked.rows is not None:
            # a real run's active set (rows any batch has touched) is more than one batch's: activate a share of the
            # vocabulary up front so every step pays the row updates a long run would
            stacked.rows.activate(torch.randperm(vocab, generator=g)[: int(active_share * vocab)])
            stacked.rows.activate(torch.unique(host_ids))
            active_rows = stacked.rows.n_active
    params = stacked.parameters() if stacked else [p for p in model.parameters() if p.requires_grad]

    clip = "noclip" not in flags
    graphs = spec.compile and compile_mode == "reduce-overhead"

    marks: list[Any] | None = None  # profile mode on CUDA: events at the step's start, after backward, at its end

    def mark() -> None:
        if marks is not None:
            marks.append(torch.cuda.Event(enable_timing=True))
            marks[-1].record()

    def step() -> None:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        mark()
        with autocast(spec, dev):
            loss, _ = stacked(task_key, batch_t, host_ids) if stacked is not None else train_model(task_key, batch_t)
        loss.sum().backward()
        mark()
        if stacked is None:
            clip_and_step(opt, params, 1.0 if clip else None)  # the pipeline's own clip + step
        else:
            if clip and old_optim:
                clip_per_model(params, 1.0, stack)
            opt.step()  # StackedAdamW clips inside (spec.max_grad_norm)
        opt.zero_grad(set_to_none=True)
        mark()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    t_warm = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warm_s = time.perf_counter() - t_warm
    if ready_file:
        Path(ready_file).touch()
    if go_file:
        while not Path(go_file).exists():
            time.sleep(0.01)
    if ddp:
        torch.distributed.barrier()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    steps, t0 = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        if steps % 4 == 0:
            sync()
            done = time.perf_counter() - t0 >= seconds
            if ddp:  # every rank must stop at the same step, or the other one waits in its all-reduce for ever
                flag = torch.tensor([float(done)], device=dev)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                done = bool(flag.item())
            if done:
                break
    sync()
    elapsed = time.perf_counter() - t0
    prof_text = None
    if profile:
        prof_text = _profile(step, sync, dev)
        if dev.type == "cuda":  # GPU time, outside the profiler: step start to end of backward, then the optimiser
            marks = []
            for _ in range(6):
                step()
            sync()
            spans = [(a.elapsed_time(b), b.elapsed_time(c)) for a, b, c in zip(*[iter(marks)] * 3, strict=True)]
            fwd_bwd, optim = (sum(x) / len(spans) for x in zip(*spans, strict=True))
            spans_text = f"GPU span per step: forward+backward {fwd_bwd:.2f} ms, clip+optimiser {optim:.2f} ms"
            prof_text = spans_text + "\n" + prof_text
    out = {
        "model": model_name,
        "task": task_key,
        "seq_len": seq_len,
        "batch": batch,
        "mode": mode,
        "processes": 1,
        "rank": dist_env.rank if ddp else 0,
        "stacked_models": stack,
        "stack_path": None if stacked is None else ("vmap" if stacked.uses_vmap(task_key) else "stacked_encoder"),
        "steps": steps,
        "elapsed_s": round(elapsed, 3),
        "warmup_s": round(warm_s, 2),
        "precision": spec.precision,
        "attn": attn,
        "fused_adamw": spec.fused_adamw and dev.type == "cuda",
        "compile": spec.compile,
        "compile_mode": compile_mode if spec.compile else None,
        "attention_mask": "nomask" not in flags,
        "hidden_dropout": model.encoder.config.hidden_dropout_prob,
        "grad_clip": clip,
        "optimizer": None if stacked is None else ("torch AdamW + clip_per_model" if old_optim else "StackedAdamW"),
        "bf16_weight_copies": bool(stacked is not None and stacked.low),
        "residual": "bf16" if stacked is not None and getattr(stacked._encoder, "low", False) else
        ("fp32" if spec.precision == "bf16" else spec.precision),
        "active_rows": active_rows or None,
        "profile": prof_text,
        "peak_mem_gb": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if dev.type == "cuda" else None,
    }
    return out  # the model and optimiser are freed when this frame goes; `_free` returns the memory


def _profile(step: Any, sync: Any, dev: Any, steps: int = 6) -> str:
    """Where the time of `steps` steps goes: wall and GPU-busy time per step, then the top kernels/ops."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    sync()
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        sync()
    wall = (time.perf_counter() - t0) / steps
    events = [e for e in prof.key_averages() if not getattr(e, "is_user_annotation", False)]
    kinds: dict[str, float] = {}
    for e in events:
        if e.device_type == torch.autograd.DeviceType.CUDA:
            kind = _kernel_kind(e.key)
            kinds[kind] = kinds.get(kind, 0.0) + getattr(e, "self_device_time_total", 0.0) / 1000 / steps
    sort = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    head = f"wall {1000 * wall:.2f} ms/step (under the profiler), GPU kernels {sum(kinds.values()):.2f} ms/step"
    head += "\nGPU ms/step by kind: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(kinds.items(), key=lambda x: -x[1]))
    table = prof.key_averages().table(sort_by=sort, row_limit=40, max_name_column_width=90)
    return head + "\n" + table


def _kernel_kind(name: str) -> str:
    """A GPU kernel's kind by its name: attention, matmul, Triton (fused element-wise, the optimiser's too), other."""
    low = name.lower()
    if any(k in low for k in ("sdpa", "flash", "fmha", "attention")):
        return "attention"
    if any(k in low for k in ("gemm", "nvjet", "cutlass", "xmma", "cublas")):
        return "matmul"
    if "triton" in low:
        return "triton"
    return "other"


def _rates(r: dict[str, Any], flops_step: float, peak: float) -> dict[str, Any]:
    seq_s = r["steps"] * r["batch"] * r.get("stacked_models", 1) / r["elapsed_s"]
    return {
        **r,
        "seq_per_s": round(seq_s, 1),
        "tokens_per_s": round(seq_s * r["seq_len"]),
        "step_ms": round(1000 * r["elapsed_s"] / r["steps"], 2),
        "mfu": _sig(flops_step * r.get("stacked_models", 1) * r["steps"] / r["elapsed_s"] / peak),
    }


def shared(
    model_name: str, task_key: str, n: int, args: argparse.Namespace, seq_len: int, workdir: Path, mode: str = "shared"
) -> dict[str, Any]:
    """N worker processes train at once; they start measuring together and report their own rates."""
    go = workdir / f"go-{model_name}-{task_key}"
    go.unlink(missing_ok=True)
    procs, readies = [], []
    for i in range(n):
        ready = workdir / f"ready-{model_name}-{task_key}-{i}"
        ready.unlink(missing_ok=True)
        readies.append(ready)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker-mode",
            mode,
            "--worker",
            model_name,
            task_key,
            "--seq-len",
            str(seq_len),
            "--batch",
            str(args.batch),
            "--seconds",
            str(args.seconds),
            "--warmup",
            str(args.warmup),
            "--device",
            args.device,
            "--go",
            str(go),
            "--ready",
            str(ready),
        ]
        cmd += ["--no-compile"] if args.no_compile else ["--compile-mode", args.compile_mode]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    deadline = time.time() + args.worker_timeout
    while not all(r.exists() for r in readies):
        if time.time() > deadline or any(p.poll() not in (None, 0) for p in procs):
            go.touch()
            for p in procs:
                p.kill()
            raise RuntimeError(f"shared run {model_name}/{task_key} x{n}: a worker failed or timed out")
        time.sleep(0.05)
    go.touch()
    results = []
    for p in procs:
        stdout, _ = p.communicate(timeout=args.worker_timeout)
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    seq_s = sum(r["steps"] * r["batch"] / r["elapsed_s"] for r in results)
    flops_step = _flops_per_step(model_name, seq_len, args.batch)
    return {
        "model": model_name,
        "task": task_key,
        "seq_len": seq_len,
        "batch": args.batch,
        "mode": mode,
        "processes": n,
        "seq_per_s": round(seq_s, 1),
        "tokens_per_s": round(seq_s * seq_len),
        "mfu": _sig(seq_s / args.batch * flops_step / args.peak),
        "precision": "bf16",
        "attn": "sdpa",
        "compile": not args.no_compile,
        "workers": results,
        "peak_mem_gb": max((r.get("peak_mem_gb") or 0) for r in results) or None,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_group(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `cmd` (torchrun) in its own process group; on timeout kill the whole group, ranks included (killing only
    torchrun would leave its ranks holding the GPUs)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise RuntimeError(f"torchrun ran past {timeout:.0f} s and was killed: {err[-1500:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def dist_env() -> dict[str, str]:
    """The environment for torchrun: this repo importable, NVLink multicast kept off (the GPU host's rule)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for k, v in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"), ("NVSHMEM_DISABLE_NVLS", "1")):
        env.setdefault(k, v)
    return env


def ddp(
    model_name: str, task_key: str, n: int, args: argparse.Namespace, seq_len: int, workdir: Path, mode: str = "ddp"
) -> dict[str, Any]:
    """One cell on `n` ranks through DDP: `torchrun --nproc_per_node n` of this script; rank 0 writes every rank's
    result. `ddp`: the recipe's effective batch (`--batch`) split over the ranks as train_phase splits it;
    `ddp+perrank`: `--batch` on every rank."""
    per_rank = args.batch if "perrank" in mode.split("+") else max(1, args.batch // n)
    result = workdir / f"ddp-{model_name}-{task_key}-{n}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_addr", "127.0.0.1"]
    cmd += ["--master_port", str(_free_port()), str(Path(__file__).resolve()), "--worker-mode", mode]
    cmd += ["--worker", model_name, task_key, "--seq-len", str(seq_len), "--batch", str(per_rank)]
    cmd += ["--seconds", str(args.seconds), "--warmup", str(args.warmup), "--device", args.device]
    cmd += ["--result", str(result)]
    cmd += ["--no-compile"] if args.no_compile else ["--compile-mode", args.compile_mode]
    proc = run_group(cmd, dist_env(), args.worker_timeout)
    if proc.returncode != 0 or not result.exists():
        errors = [line for line in proc.stderr.splitlines() if "Error" in line][-3:]  # the rank's own error first
        raise RuntimeError(f"torchrun x{n} exited {proc.returncode}: {' | '.join(errors)} ... {proc.stderr[-1000:]}")
    workers = json.loads(result.read_text())
    result.unlink()
    seq_s = sum(r["steps"] * r["batch"] / r["elapsed_s"] for r in workers)
    global_batch = per_rank * n
    first = workers[0]
    return {
        "model": model_name,
        "task": task_key,
        "seq_len": seq_len,
        "batch": global_batch,
        "batch_per_rank": per_rank,
        "mode": mode,
        "processes": n,
        "devices": n,
        "backend": "nccl" if args.device.startswith("cuda") else "gloo",
        "steps": first["steps"],
        "elapsed_s": first["elapsed_s"],
        "warmup_s": max(r["warmup_s"] for r in workers),
        "seq_per_s": round(seq_s, 1),
        "tokens_per_s": round(seq_s * seq_len),
        "step_ms": round(1000 * first["elapsed_s"] / first["steps"], 2),
        "mfu": _sig(seq_s / global_batch * _flops_per_step(model_name, seq_len, global_batch) / (n * args.peak)),
        "precision": first["precision"],
        "attn": first["attn"],
        "compile": first["compile"],
        "workers": workers,
        "peak_mem_gb": max((r.get("peak_mem_gb") or 0) for r in workers) or None,
    }


def _ddp_worker(args: argparse.Namespace) -> int:
    """One torchrun rank of `ddp`: measure in step with the other ranks; rank 0 writes all ranks' results."""
    import torch

    from replicate.dist import init_distributed, shutdown

    env = init_distributed(args.device)
    try:
        model_name, task_key = args.worker
        r = measure(
            model_name, task_key, args.worker_mode, batch=args.batch, seq_len=args.seq_len, seconds=args.seconds,
            warmup=args.warmup, device=str(env.device), compile_model=not args.no_compile,
            compile_mode=args.compile_mode, dist_env=env,
        )  # fmt: skip
        r["processes"] = env.world
        rows: list[Any] = [None] * env.world
        torch.distributed.all_gather_object(rows, r)
        if env.is_main:
            Path(args.result).write_text(json.dumps(rows))
        torch.distributed.barrier()
    finally:
        shutdown(env)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny model on CPU, a few seconds (tests)")
    p.add_argument("--batch", type=int, default=32, help="the recipe's batch size (32)")
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run")
    p.add_argument("--warmup", type=int, default=6, help="untimed steps first (compile happens here)")
    p.add_argument("--device", default=None)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--active-share", type=float, default=0.25,
                   help="stacked: share of the vocabulary whose embedding rows are active (updated every step) from "
                        "the start, standing in for a long run's active set")
    p.add_argument("--compile-mode", default="default", help="torch.compile mode (e.g. reduce-overhead = CUDA graphs)")
    p.add_argument("--inductor", action="append", default=[], metavar="KEY=VALUE",
                   help="set torch._inductor.config.KEY (a Python literal) before running, e.g. combo_kernels=True")
    p.add_argument("--budget", type=float, default=330.0, help="start no new run after this many seconds")
    p.add_argument(
        "--cases", default=None, help="'variants', or MODEL:TASK:MODE:N,... e.g. xlm-roberta-large:cls:shared:4"
    )
    p.add_argument("--peak", type=float, default=PEAK_FLOPS)
    p.add_argument(
        "--profile", default=None, metavar="MODEL:TASK:MODE[:N]", help="profile one run (N stacked) and print the table"
    )
    p.add_argument("--worker-timeout", type=float, default=300.0)
    p.add_argument("--worker", nargs=2, metavar=("MODEL", "TASK"), help=argparse.SUPPRESS)
    p.add_argument("--worker-mode", default="shared", help=argparse.SUPPRESS)
    p.add_argument("--seq-len", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--go", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ready", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import torch
    import torch._inductor.config

    for item in args.inductor:  # diagnostics: inductor's own knobs, for this process
        key, _, value = item.partition("=")
        *path, attr = key.split(".")
        owner: Any = torch._inductor.config
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, attr, ast.literal_eval(value))

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if args.worker and args.worker_mode.split("+")[0] == "ddp":
        rc = _ddp_worker(args)
        sys.stdout.flush()
        sys.stderr.flush()
        # the results are written: skip interpreter teardown, where a gloo rank on the CPU sometimes aborts
        # ("terminate called without an active exception", ~1 run in 12 under load; torch 2.x)
        os._exit(rc)
    if args.worker:
        model_name, task_key = args.worker
        r = measure(
            model_name,
            task_key,
            args.worker_mode,
            batch=args.batch,
            seq_len=args.seq_len,
            seconds=args.seconds,
            warmup=args.warmup,
            device=args.device,
            compile_model=not args.no_compile,
            compile_mode=args.compile_mode,
            active_share=args.active_share,
            go_file=args.go,
            ready_file=args.ready,
        )
        print(json.dumps(r))  # noqa: T201
        return 0

    t_start = time.perf_counter()
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    if args.smoke:
        plan = [("tiny", "cls", "naive", 1), ("tiny", "cls", "optimised", 1), ("tiny", "cls", "shared", 2),
                ("tiny", "cls", "stacked", 2)]
        seq = {"cls": 16, "qa": 32}
        args.batch, args.seconds, args.warmup, args.no_compile = 4, min(args.seconds, 0.5), 2, True
    else:
        plan = FULL_PLAN
        seq = {k: v[1] for k, v in TASKS.items()}
    if args.profile:
        m, t, mode, *n = args.profile.split(":")
        r = measure(
            m,
            t,
            mode,
            batch=args.batch,
            seq_len=seq[t],
            seconds=args.seconds,
            warmup=args.warmup,
            device=args.device,
            compile_model=not args.no_compile,
            compile_mode=args.compile_mode,
            active_share=args.active_share,
            profile=True,
            stack=int(n[0]) if n else 1,
        )
        r = _rates(r, _flops_per_step(m, seq[t], args.batch), args.peak)
        print(r.pop("profile"))  # noqa: T201
        print(json.dumps(r))  # noqa: T201
        return 0
    if args.cases == "variants":
        plan = VARIANTS_PLAN
    elif args.cases:
        plan = [(m, t, mode, int(n)) for m, t, mode, n in (c.split(":") for c in args.cases.split(","))]
    out_dir = Path(os.environ.get("OUT") or REPO / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for model_name, task_key, mode, n in plan:
        label = f"{model_name}:{task_key}:{mode}:{n}"
        if time.perf_counter() - t_start > args.budget:
            skipped.append(f"{label} (time budget)")
            continue
        L = seq[task_key]
        try:
            if mode.split("+")[0] == "shared":
                rows.append(shared(model_name, task_key, n, args, L, out_dir, mode))
            elif mode.split("+")[0] == "ddp":
                rows.append(ddp(model_name, task_key, n, args, L, out_dir, mode))
            else:
                stack = n if mode.split("+")[0] == "stacked" else 1
                r = measure(
                    model_name,
                    task_key,
                    mode,
                    batch=args.batch,
                    seq_len=L,
                    seconds=args.seconds,
                    warmup=3 if mode == "naive" else args.warmup,
                    device=args.device,
                    compile_model=not args.no_compile,
                    compile_mode=args.compile_mode,
            active_share=args.active_share,
                    stack=stack,
                )
                rows.append(_rates(r, _flops_per_step(model_name, L, args.batch), args.peak))
            _progress(rows[-1])
            _free()
        except Exception as e:  # an out-of-memory or compile failure is recorded, the rest goes on
            skipped.append(f"{label} ({type(e).__name__}: {str(e)[:300]})")
            _free()
            print(f"  {label} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)  # noqa: T201
    for f in out_dir.glob("go-*"):
        f.unlink()
    for f in out_dir.glob("ready-*"):
        f.unlink()
    naive = {(r["model"], r["task"]): r["seq_per_s"] for r in rows if r["mode"] == "naive"}
    for r in rows:
        r.pop("profile", None)
    one_gpu = {(r["model"], r["task"]): r["seq_per_s"] for r in rows if r["mode"] == "optimised"}
    for r in rows:
        base = naive.get((r["model"], r["task"]))
        r["speedup_vs_naive"] = round(r["seq_per_s"] / base, 2) if base else None
        if r["mode"].split("+")[0] == "ddp":
            single = one_gpu.get((r["model"], r["task"]))
            r["scaling_vs_optimised"] = round(r["seq_per_s"] / single, 3) if single else None
        if args.smoke:
            r["smoke"] = True
    doc = {
        "benchmark": "replicate_throughput",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": device_name,
        "smoke": args.smoke,
        "peak_flops": args.peak,
        "flops_formula": "6*N_nonemb*tokens + 12*layers*seq_len*hidden*tokens (training: fwd+bwd)",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "results": rows,
        "skipped": skipped,
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    # only the standard plan writes replicate_throughput.json (the rates `claimscope replicate --dry-run` reads)
    name = "replicate_throughput.json"
    if args.smoke:
        name = "replicate_throughput_smoke.json"
    elif args.cases:
        name = f"replicate_throughput_{'variants' if args.cases == 'variants' else 'cases'}.json"
    (out_dir / name).write_text(json.dumps(doc, indent=2) + "\n")
    print(format_table(doc))  # noqa: T201
    print(f"wrote {out_dir / name}")  # noqa: T201
    return 0


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _progress(r: dict[str, Any] | None) -> None:
    if r:
        print(f"  {r['model']} {r['task']} {r['mode']}: {r['seq_per_s']} seq/s, MFU {r['mfu']:.1%}", flush=True)  # noqa: T201


def _cells(r: dict[str, Any]) -> int:
    """Grid cells training at once: processes sharing the GPU, or models stacked into one (DDP: one cell)."""
    if r.get("devices", 1) > 1:
        return 1
    return r.get("processes", 1) * r.get("stacked_models", 1)


def format_table(doc: dict[str, Any]) -> str:
    batch = doc["results"][0]["batch"] if doc["results"] else "?"
    head = f"{'model':<18} {'task':<4} {'len':>4} {'mode':<24} {'cells':>5} {'seq/s':>9} {'tokens/s':>10} {'MFU':>6}"
    lines = [
        f"replicate training throughput on {doc['device']} "
        f"(batch {batch}; MFU vs {doc['peak_flops'] / 1e12:.0f} TFLOP/s)",
        head + f" {'x naive':>7}",
    ]
    for r in doc["results"]:
        lines.append(
            f"{r['model']:<18} {r['task']:<4} {r['seq_len']:>4} {r['mode']:<24} {_cells(r):>5} "
            f"{r['seq_per_s']:>9.1f} {r['tokens_per_s']:>10,} {r['mfu']:>6.1%} {r['speedup_vs_naive'] or 0:>7.2f}"
        )
    for r in doc["results"]:
        if r.get("devices", 1) > 1:
            scale = r.get("scaling_vs_optimised")
            vs = f"; {scale:.2f}x optimised on 1 device ({scale / r['devices']:.0%} efficiency)" if scale else ""
            lines.append(
                f"{r['mode']} {r['model']} {r['task']}: {r['devices']} {r['backend']} ranks x {r['batch_per_rank']} "
                f"= batch {r['batch']}, {r['step_ms']} ms/step (MFU per device){vs}"
            )
    for s in doc["skipped"]:
        lines.append(f"skipped: {s}")
    lines.append(f"wall time {doc['wall_seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
