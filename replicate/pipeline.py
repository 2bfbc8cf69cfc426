"""The three phases of X-STILTs for every cell of a recipe, writing replication.json as cells finish.

Phase 1: start from the pretrained encoder (hub name or local folder). Phase 2: fine-tune on the English intermediate
task(s) (optionally with multilingual MLM co-training), once per (setting, MLM, seed), and save the encoder. Phase 3:
for each target, a fresh head on the phase-2 encoder, trained on English and evaluated zero-shot on every language;
retrieval targets are evaluated directly on the phase-2 encoder (mean-pooled middle layer, no training).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

from .config import MULTITASK, Recipe, TaskSpec
from .data import Example, load_examples
from .dist import DistEnv, barrier, init_distributed
from .errors import DataNotFound
from .evaluate import evaluate_retrieval, evaluate_task
from .features import featurize, tag_labels
from .fileio import write_json
from .model import MultiTaskModel, build_model, encoder_config, load_encoder, save_encoder
from .results import environment, paper_value, summarize_cell
from .stacked import train_phase_stacked
from .train import train_phase

logger = logging.getLogger(__name__)


class Runner:
    """Runs a recipe; one instance per process (every DDP rank runs the same code, rank 0 writes).

    `cells` limits the run to those (setting, MLM, seed, target) cells (a shard, replicate/shard.py); `shard` is the
    record written under "shard" in replication.json.
    """

    def __init__(
        self,
        recipe: Recipe,
        out_dir: Path,
        env: DistEnv | None = None,
        cells: Collection[tuple] | None = None,
        shard: dict[str, Any] | None = None,
    ) -> None:
        self.recipe = recipe
        self.out = Path(out_dir)
        self.env = env or init_distributed()
        self.cells = None if cells is None else set(cells)
        self.shard = shard
        self.spec = recipe.train
        self.gaps: list[dict[str, str]] = []
        self._tokenizer: Any = None
        if self.spec.num_threads:
            torch.set_num_threads(self.spec.num_threads)

    # --- data ---------------------------------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.recipe.tokenizer or self.recipe.model))
        return self._tokenizer

    def examples(self, task: TaskSpec, split: str, lang: str = "en", limit: int | None = None) -> list[Example]:
        r = self.recipe
        return load_examples(task, split, lang, source=r.data_source, data_dir=r.data_dir, limit=limit)

    def _eval_split(self, task: TaskSpec, lang: str) -> list[Example]:
        for split in ("test", "dev"):
            try:
                return self.examples(task, split, lang, self.spec.limit_eval)
            except DataNotFound:
                continue
        raise DataNotFound(f"{task.name}/{lang}", "no test or dev data for this language")

    # --- phases -------------------------------------------------------------------------------------------------------

    def _encoder(self, path: str | Path) -> torch.nn.Module:
        enc = load_encoder(path, attn_implementation=self.spec.attn_implementation)
        return enc.to(self.env.device)

    def _maybe_compile(self, model: MultiTaskModel) -> None:
        if self.spec.compile and self.env.device.type == "cuda":
            model.encoder = torch.compile(model.encoder, dynamic=None)  # type: ignore[assignment]

    def _dev_eval(self, task: TaskSpec, tags: list[str] | None) -> Any:
        if not (self.spec.select_on_dev and task.select_on_dev):
            return None
        caps = [c for c in (task.early_stop_dev, self.spec.limit_eval) if c]
        n = min(caps) if caps else None
        try:
            dev = self.examples(task, "dev", "en", n)
        except DataNotFound:
            return None
        if not dev:
            return None

        def fn(model: MultiTaskModel) -> float:
            scores = evaluate_task(model, task, self.tokenizer, dev, "en", self.spec, self.env, tags=tags)
            return float(scores.get("f1", scores.get("accuracy", 0.0)))

        return fn

    def phase2(self, setting: str | None, mlm: bool, seed: int) -> tuple[str, dict[str, Any]]:
        """Intermediate training; returns the encoder path for phase 3 and a summary."""
        if setting is None:
            return str(self.recipe.model), {"skipped": "baseline: no intermediate task"}
        key = phase2_key(setting, mlm, seed)
        enc_dir = self.out / "phase2" / key / "encoder"
        if (enc_dir / "config.json").exists():
            logger.info("phase 2 %s: reusing %s", key, enc_dir)
            return str(enc_dir), {"reused": str(enc_dir)}
        names = self.recipe.intermediate_tasks(setting, mlm)
        tasks = [self.recipe.task(n) for n in names]
        streams: dict[str, tuple[TaskSpec, list[dict[str, Any]]]] = {}
        tag_sets: dict[str, list[str]] = {}
        for t in tasks:
            rows = self.examples(t, "train", "en", self.spec.limit_train) if t.kind != "mlm" else self._mlm_rows(t)
            if t.kind == "tagging":
                tag_sets[t.name] = tag_labels(t, rows)
            streams[t.name] = (t, featurize(t, self.tokenizer, rows, train=True, tags=tag_sets.get(t.name)))
        torch.manual_seed(seed)
        model = build_model(self._encoder(self.recipe.model), tasks, tag_sets)
        self._maybe_compile(model)
        primary = tasks[0]
        lr = self.spec.mlm_lr if mlm else primary.lr
        epochs = 3.0 if setting == MULTITASK else primary.epochs
        t0 = time.perf_counter()
        res = train_phase(
            model, streams, self.spec, self.env, lr=lr, epochs=epochs, seed=seed,
            pad_id=self.tokenizer.pad_token_id, mask_id=self.tokenizer.mask_token_id,
            special_ids=list(self.tokenizer.all_special_ids),
            eval_fn=self._dev_eval(primary, tag_sets.get(primary.name)), progress=self._progress(f"phase2 {key}"),
        )  # fmt: skip
        if self.env.is_main:
            save_encoder(model, self.tokenizer, enc_dir)
        barrier(self.env)
        summary = {
            "tasks": names,
            "lr": lr,
            "epochs": epochs,
            **res.summary(),
            "wall_seconds": time.perf_counter() - t0,
        }
        del model
        return str(enc_dir), summary

    def _mlm_rows(self, task: TaskSpec) -> list[Example]:
        """The multilingual MLM corpus: every language file of the mlm task that exists."""
        rows: list[Example] = []
        langs = sorted(set(task.languages) | set(self._local_langs(task)))
        for lang in langs:
            try:
                rows += self.examples(task, "train", lang, self.spec.limit_train)
            except DataNotFound:
                continue
        if not rows:
            raise DataNotFound(task.name, "no MLM training text found")
        return rows

    def _local_langs(self, task: TaskSpec) -> list[str]:
        if self.recipe.data_source != "local" or not self.recipe.data_dir:
            return []
        folder = Path(self.recipe.data_dir) / task.name
        return [m.group(1) for p in folder.glob("train.*.*") if (m := re.match(r"train\.(\w+)\.", p.name))]

    def phase3(self, target: str, encoder_path: str, seed: int) -> dict[str, Any]:
        """Train on the target's English data (if any) and evaluate zero-shot on every language."""
        task = self.recipe.task(target)
        scores: dict[str, dict[str, float]] = {}
        info: dict[str, Any] = {}
        if task.kind == "retrieval":
            encoder = self._encoder(encoder_path)
            layer = self.recipe.retrieval_layer or encoder_config(encoder).num_hidden_layers // 2 + 1
            info["layer"] = layer
            for lang in task.languages:
                if lang == "en":
                    continue
                try:
                    test = self._eval_split(task, lang)
                    dev = None
                    if task.protocol == "bucc":
                        try:
                            dev = self.examples(task, "dev", lang, self.spec.limit_eval)
                        except DataNotFound:
                            dev = None
                except DataNotFound as e:
                    self.gaps.append({"stage": "replicate", "item": f"{target}/{lang}", "reason": str(e)})
                    continue
                scores[lang] = evaluate_retrieval(encoder, task, self.tokenizer, test, self.spec, self.env, layer, dev)
            del encoder
            return {"scores": scores, **info}
        feats, tags = self._target_features(task)
        torch.manual_seed(seed)
        model = build_model(self._encoder(encoder_path), [task], {task.name: tags or []})
        self._maybe_compile(model)
        res = train_phase(
            model, {task.name: (task, feats)}, self.spec, self.env, lr=task.lr, epochs=task.epochs, seed=seed,
            pad_id=self.tokenizer.pad_token_id, eval_fn=self._dev_eval(task, tags),
            progress=self._progress(f"phase3 {target}"),
        )  # fmt: skip
        info["train"] = res.summary()
        scores = self._evaluate_languages(model, task, tags)
        del model
        return {"scores": scores, **info}

    def phase3_stacked(self, target: str, encoder_paths: list[str], seed: int) -> list[dict[str, Any]]:
        """Phase 3 of several cells of one trained target (same data, same seed) as one batched model."""
        task = self.recipe.task(target)
        feats, tags = self._target_features(task)
        models = []
        for path in encoder_paths:
            torch.manual_seed(seed)  # each cell's head starts as it would alone
            models.append(build_model(self._encoder(path), [task], {task.name: tags or []}))
        results = train_phase_stacked(
            models, task, feats, self.spec, self.env, lr=task.lr, epochs=task.epochs, seed=seed,
            pad_id=self.tokenizer.pad_token_id, eval_fn=self._dev_eval(task, tags),
            progress=self._progress(f"phase3 {target} x{len(models)} stacked"),
        )  # fmt: skip
        outs = []
        for model, res in zip(models, results, strict=True):
            train = res.summary() | {"stacked_with": len(models)}
            outs.append({"scores": self._evaluate_languages(model, task, tags), "train": train})
        return outs

    def _target_features(self, task: TaskSpec) -> tuple[list[dict[str, Any]], list[str] | None]:
        train_rows = self.examples(task, "train", "en", self.spec.limit_train)
        tags = tag_labels(task, train_rows) if task.kind == "tagging" else None
        return featurize(task, self.tokenizer, train_rows, train=True, tags=tags), tags

    def _evaluate_languages(
        self, model: MultiTaskModel, task: TaskSpec, tags: list[str] | None
    ) -> dict[str, dict[str, float]]:
        scores: dict[str, dict[str, float]] = {}
        for lang in task.languages:
            try:
                rows = self._eval_split(task, lang)
            except DataNotFound as e:
                self.gaps.append({"stage": "replicate", "item": f"{task.name}/{lang}", "reason": str(e)})
                continue
            scores[lang] = evaluate_task(model, task, self.tokenizer, rows, lang, self.spec, self.env, tags=tags)
        return scores

    def _progress(self, label: str) -> Any:
        last = [0.0]

        def cb(step: int, total: int, loss: torch.Tensor) -> None:
            now = time.perf_counter()
            if self.env.is_main and (now - last[0] > 30 or step == total):
                last[0] = now  # float(loss) syncs the device: only when a line is logged
                logger.info("%s: step %d/%d loss %.4f", label, step, total, float(loss))

        return cb

    # --- the grid -----------------------------------------------------------------------------------------------------

    def _targets(self, setting: str | None, mlm: bool, seed: int) -> list[str]:
        """The targets this run covers on one phase-2 group (all of them unless the run is a shard)."""
        r = self.recipe
        return [t for t in r.targets if self.cells is None or (setting, mlm, seed, t) in self.cells]

    def _finished_cells(self) -> dict[tuple, Any]:
        """Cells already in this folder's replication.json from the same recipe (a rerun resumes after them)."""
        path = self.out / "replication.json"
        if not path.exists():
            return {}
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}
        if old.get("recipe") != json.loads(json.dumps(self.recipe.to_dict(), default=str)):
            logger.info("%s holds another recipe's results; not resuming from it", path)
            return {}
        done: dict[tuple, Any] = {(c["intermediate"], c["mlm"], c["seed"], c["target"]): c for c in old["cells"]}
        done.update({("phase2", k): v for k, v in old.get("phase2", {}).items()})
        return done

    def run(self) -> dict[str, Any]:
        r = self.recipe
        t0 = time.perf_counter()
        doc: dict[str, Any] = {
            "kind": "claimscope.replication",
            "version": 1,
            "scale": r.scale,
            "recipe": r.to_dict(),
            "seeds": list(r.seeds),
            "environment": environment(self.env.world),
            "cells": [],
            "phase2": {},
            "gaps": self.gaps,
            "paper_source": _paper_source(),
        }
        if self.shard is not None:
            doc["shard"] = self.shard
        done = self._finished_cells()
        if self.spec.stack_cells > 1 and not self.env.enabled:
            self._run_stacked(doc, done, t0)
        else:
            self._run_in_order(doc, done, t0)
        doc["wall_seconds"] = round(time.perf_counter() - t0, 3)
        if self.env.is_main:
            write_json(self.out / "replication.json", doc)
        return doc

    def _add_cell(self, doc: dict[str, Any], cell_key: tuple, out: dict[str, Any], seconds: float, t0: float) -> None:
        setting, mlm, seed, target = cell_key
        task = self.recipe.task(target)
        metric = task.metric
        primary = {lang: s[metric] for lang, s in out["scores"].items() if metric in s}
        paper = paper_value(target, setting, mlm, metric) if self.recipe.scale == "full" else None
        cell = {
            "intermediate": setting, "mlm": mlm, "seed": seed, "target": target, "metric": metric,
            "scores": out["scores"], "primary": primary, **summarize_cell(primary),
            "paper": paper, "phase3": {k: v for k, v in out.items() if k != "scores"},
            "wall_seconds": round(seconds, 3),
        }  # fmt: skip
        if paper and cell["avg"] is not None:
            cell["diff_from_paper"] = round(cell["avg"] - paper["avg"], 2)
        doc["cells"].append(cell)
        doc["wall_seconds"] = round(time.perf_counter() - t0, 3)
        if self.env.is_main:
            write_json(self.out / "replication.json", doc)

    def _run_in_order(self, doc: dict[str, Any], done: dict[tuple, Any], t0: float) -> None:
        """Cell after cell: each phase-2 encoder, then every target's phase 3 on it."""
        r = self.recipe
        for setting, mlm, seed in r.phase2_groups():
            targets = self._targets(setting, mlm, seed)
            if not targets:
                continue
            todo = [t for t in targets if (setting, mlm, seed, t) not in done]
            key = phase2_key(setting, mlm, seed)
            doc["phase2"][key] = done.get(("phase2", key)) or {}
            if todo:
                enc_path, doc["phase2"][key] = self.phase2(setting, mlm, seed)
            for target in targets:
                if (setting, mlm, seed, target) in done:
                    doc["cells"].append(done[(setting, mlm, seed, target)])
                    continue
                c0 = time.perf_counter()
                out = self.phase3(target, enc_path, seed)
                self._add_cell(doc, (setting, mlm, seed, target), out, time.perf_counter() - c0, t0)

    def _run_stacked(self, doc: dict[str, Any], done: dict[tuple, Any], t0: float) -> None:
        """All phase-2 encoders first, then each trained target's phase 3 for up to `stack_cells` cells at once
        (cells of one seed share batches, so only they are stacked together)."""
        r = self.recipe
        groups = [g for g in r.phase2_groups() if self._targets(*g)]
        enc_paths: dict[tuple, str] = {}
        for setting, mlm, seed in groups:
            key = phase2_key(setting, mlm, seed)
            doc["phase2"][key] = done.get(("phase2", key)) or {}
            if any((setting, mlm, seed, t) not in done for t in self._targets(setting, mlm, seed)):
                enc_paths[(setting, mlm, seed)], doc["phase2"][key] = self.phase2(setting, mlm, seed)
        for target in r.targets:
            pending = []
            for g in groups:
                if target not in self._targets(*g):
                    continue
                if (*g, target) in done:
                    doc["cells"].append(done[(*g, target)])
                else:
                    pending.append(g)
            if not r.task(target).trained:
                for g in pending:
                    c0 = time.perf_counter()
                    out = self.phase3(target, enc_paths[g], g[2])
                    self._add_cell(doc, (*g, target), out, time.perf_counter() - c0, t0)
                continue
            for seed in sorted({g[2] for g in pending}):
                same_seed = [g for g in pending if g[2] == seed]
                for i in range(0, len(same_seed), self.spec.stack_cells):
                    chunk = same_seed[i : i + self.spec.stack_cells]
                    c0 = time.perf_counter()
                    if len(chunk) == 1:
                        outs = [self.phase3(target, enc_paths[chunk[0]], seed)]
                    else:
                        outs = self.phase3_stacked(target, [enc_paths[g] for g in chunk], seed)
                    seconds = (time.perf_counter() - c0) / len(chunk)
                    for g, out in zip(chunk, outs, strict=True):
                        self._add_cell(doc, (*g, target), out, seconds, t0)


def phase2_key(setting: str | None, mlm: bool, seed: int) -> str:
    """The name of a phase-2 group in replication.json and on disk (phase2/<key>/encoder)."""
    return f"{setting}{'+mlm' if mlm else ''}-s{seed}"


def _paper_source() -> dict[str, Any]:
    from .results import paper_table

    return paper_table()["source"]


def run_recipe(
    recipe: Recipe,
    out_dir: Path,
    env: DistEnv | None = None,
    cells: Collection[tuple] | None = None,
    shard: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every cell of `recipe` (or only `cells`); returns the replication.json document (also written to
    `out_dir`)."""
    return Runner(recipe, out_dir, env, cells, shard).run()
