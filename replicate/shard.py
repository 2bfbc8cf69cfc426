"""A recipe's grid spread over several processes (one per GPU) without DDP, and the merge of their results.

DDP at the recipe's batch of 32 ran at 0.41x one GPU on the H200 host (benchmarks/results/replicate_ddp.txt), so
several GPUs are used by giving each process a disjoint share of the cells (`--shard K/N`) and merging the shards'
replication.json afterwards.

The split works on units: a phase-2 group (setting, MLM, seed) with the targets run on its encoder. A group is kept
on one shard where possible, because every shard holding one of its cells trains that phase-2 encoder again; it is
split (its phase 2 then paid by each part) only where that lowers the busiest shard's estimated hours (by MIN_GAIN
at least: the fewest splits that come that close to the best the splitting reaches). Cells of the
baseline, which has no phase 2, are units on their own. Costs are the dry-run plan's GPU-hours (replicate/plan.py, the
measured rates); where the plan has no estimate for any run (tasks without sizes) every phase run counts 1, so the
units are dealt out by count, round-robin in effect. Same recipe, shard count and rates: same split, in every process.
"""

from __future__ import annotations

import heapq
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Recipe
from .errors import ReplicateError

logger = logging.getLogger(__name__)

CellKey = tuple[str | None, bool, int, str]  # (intermediate setting, MLM co-training, seed, target)
GroupKey = tuple[str | None, bool, int]
# Splits that shorten the busiest shard by less than this share are not made: each trains a phase 2 once more, and
# the estimates are not finer than this (the one-GPU rate varied 597-759 seq/s between calls on the same H200 type).
MIN_GAIN = 0.01


class ShardError(ReplicateError):
    pass


@dataclass(frozen=True)
class ShardSpec:
    index: int  # 0-based
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """'K/N' with 0 <= K < N."""
        try:
            k, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise ShardError("--shard", f"expected K/N (e.g. 0/4), got {text!r}") from None
        if n < 1 or not 0 <= k < n:
            raise ShardError("--shard", f"need 0 <= K < N, got {text!r}")
        return cls(k, n)

    @property
    def dirname(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class ShardPlan:
    """Which cells each shard runs (each list in the grid's order) and its estimated cost."""

    cells: list[list[CellKey]]
    cost: list[float]  # per shard, in `basis` units
    basis: str
    repeated: float = 0.0  # cost of phase-2 runs trained on more than one shard (beyond their first)

    def to_dict(self, index: int) -> dict[str, Any]:
        """The record a shard writes into its replication.json (the whole split, so the merge can check it)."""
        return {
            "index": index,
            "count": len(self.cells),
            "basis": self.basis,
            "estimated_cost": [round(c, 4) for c in self.cost],
            "assignment": [[list(c) for c in cells] for cells in self.cells],
        }


def grid_cells(recipe: Recipe) -> list[CellKey]:
    """Every cell of the recipe, in the order an unsharded run lists them: phase-2 group by group, then targets."""
    return [(*g, t) for g in recipe.phase2_groups() for t in recipe.targets]


def _costs(recipe: Recipe, rates: dict[str, Any] | None) -> tuple[dict[GroupKey, float], dict[CellKey, float], str]:
    """Phase-2 cost per group and phase-3 cost per cell, from the plan's hours in the mode one process would run."""
    groups = {g: 0.0 for g in recipe.phase2_groups()}
    cells = dict.fromkeys(grid_cells(recipe), 0.0)
    if rates is not None:
        from .plan import plan_recipe

        mode = "stacked" if recipe.train.stack_cells > 1 else "optimised"
        for row in plan_recipe(recipe, rates):
            if len(row.key) == 3:
                groups[row.key] += row.hours[mode]
            else:
                cells[row.key] += row.hours[mode]
        if sum(groups.values()) + sum(cells.values()) > 0:
            return groups, cells, f"estimated GPU-hours ({mode}; rates from {rates.get('source')})"
    groups = {g: (1.0 if g[0] is not None else 0.0) for g in groups}
    return groups, dict.fromkeys(cells, 1.0), "phase runs (no GPU-hour estimate)"


@dataclass(frozen=True)
class _Unit:
    order: int  # position of its first cell in the grid (ties and output order)
    group: GroupKey
    cells: tuple[CellKey, ...]
    cost: float


def _deal(units: list[_Unit], n: int) -> tuple[list[list[_Unit]], list[float]]:
    """Longest unit first, each to the least-loaded shard (lowest index on ties)."""
    shards: list[list[_Unit]] = [[] for _ in range(n)]
    load = [0.0] * n
    heap = [(0.0, i) for i in range(n)]
    for u in sorted(units, key=lambda u: (-u.cost, u.order)):
        _, k = heapq.heappop(heap)
        shards[k].append(u)
        load[k] += u.cost
        heapq.heappush(heap, (load[k], k))
    return shards, load


def _halve(u: _Unit, p2: float, cost: dict[CellKey, float], pos: dict[CellKey, int]) -> list[_Unit]:
    halves: list[list[CellKey]] = [[], []]
    load = [0.0, 0.0]
    for c in sorted(u.cells, key=lambda c: (-cost[c], pos[c])):
        k = min((0, 1), key=lambda i: (load[i], len(halves[i])))  # cells of no cost alternate
        halves[k].append(c)
        load[k] += cost[c]
    out = []
    for h in halves:
        h.sort(key=pos.__getitem__)
        out.append(_Unit(pos[h[0]], u.group, tuple(h), p2 + sum(cost[c] for c in h)))
    return out


def split_cells(recipe: Recipe, count: int, rates: dict[str, Any] | None = None) -> ShardPlan:
    """Partition the recipe's cells over `count` shards (see the module docstring)."""
    if count < 1:
        raise ShardError("--shard", f"the shard count must be at least 1, got {count}")
    order = grid_cells(recipe)
    pos = {c: i for i, c in enumerate(order)}
    p2, cost, basis = _costs(recipe, rates)
    units: list[_Unit] = []
    for g in recipe.phase2_groups():
        of_g = tuple(c for c in order if c[:3] == g)
        if p2[g] > 0:
            units.append(_Unit(pos[of_g[0]], g, of_g, p2[g] + sum(cost[c] for c in of_g)))
        else:  # nothing shared to train: each cell stands alone
            units += [_Unit(pos[c], g, (c,), cost[c]) for c in of_g]
    # Split groups while that lowers the shards' loads (sorted, busiest first, compared in order, so a tie at the top
    # does not stop it); then keep the fewest splits that come within MIN_GAIN of the best peak found.
    steps = [(max(_deal(units, count)[1]), units)]
    rank = sorted(_deal(units, count)[1], reverse=True)
    while True:
        best: tuple[list[float], list[_Unit]] | None = None
        for u in sorted(units, key=lambda u: u.order):
            if len(u.cells) < 2:
                continue
            trial = [v for v in units if v is not u] + _halve(u, p2[u.group], cost, pos)
            loads = sorted(_deal(trial, count)[1], reverse=True)
            if loads < rank and (best is None or loads < best[0]):
                best = (loads, trial)
        if best is None:
            break
        rank, units = best
        steps.append((rank[0], units))
    floor = min(peak for peak, _ in steps)
    units = next(u for peak, u in steps if peak <= floor * (1 + MIN_GAIN))
    shards, load = _deal(units, count)
    cells = [sorted((c for u in s for c in u.cells), key=pos.__getitem__) for s in shards]
    parts = {g: sum(u.group == g for u in units) for g in p2 if p2[g] > 0}
    return ShardPlan(cells=cells, cost=load, basis=basis, repeated=sum((n - 1) * p2[g] for g, n in parts.items()))


# --- merge ----------------------------------------------------------------------------------------------------------


def _cell_key(cell: dict[str, Any]) -> CellKey:
    return (cell["intermediate"], bool(cell["mlm"]), int(cell["seed"]), cell["target"])


def _show(key: CellKey | tuple) -> str:
    setting, mlm, seed, target = key
    return f"{setting or 'baseline'}{'+MLM' if mlm else ''} s{seed} -> {target}"


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".") or "<value>"]


def shard_files(paths: list[Path]) -> list[Path]:
    """The replication.json files named by `paths`: a file, a run folder holding one, or a folder whose
    shard-*/replication.json are taken (its own replication.json, a previous merge, is then not read)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
            continue
        inner = sorted(p.glob("shard-*/replication.json"))
        if inner:
            out += inner
        elif (p / "replication.json").is_file():
            out.append(p / "replication.json")
        else:
            raise ShardError(str(p), "no replication.json here or in shard-*/ below it")
    return out


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ShardError(str(path), f"not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "claimscope.replication" or "cells" not in doc:
        raise ShardError(str(path), "not a replicate replication.json (kind claimscope.replication with cells)")
    return doc


def merge_shards(paths: list[Path], allow_partial: bool = False) -> dict[str, Any]:
    """One replication.json document from the shards' files, cells in the grid's order.

    Refuses shards of another recipe (naming the fields that differ), shards split differently, a cell found in two
    files, and, unless `allow_partial`, cells of the grid that no shard has (each named).
    """
    files = shard_files(paths)
    if not files:
        raise ShardError("merge", "no shard files given")
    docs = [_load(f) for f in files]
    first, ref = files[0], docs[0]
    for f, d in zip(files[1:], docs[1:], strict=True):
        diff = _differences(ref.get("recipe"), d.get("recipe"))
        if diff or d.get("scale") != ref.get("scale"):
            what = ", ".join(diff[:8]) + (" ..." if len(diff) > 8 else "") if diff else "scale"
            raise ShardError(str(f), f"from another config than {first} (differs in {what})")
    split: tuple[str, Any] | None = None
    for f, d in zip(files, docs, strict=True):
        s = d.get("shard")
        if s is None:
            continue
        if split is None:
            split = (str(f), s["assignment"])
        elif s["assignment"] != split[1]:
            raise ShardError(
                str(f), f"split {s['index']}/{s['count']} differs from {split[0]}'s (another shard count or rates file)"
            )
    cells: dict[CellKey, dict[str, Any]] = {}
    where: dict[CellKey, Path] = {}
    for f, d in zip(files, docs, strict=True):
        for c in d["cells"]:
            k = _cell_key(c)
            if k in where:
                raise ShardError(str(f), f"cell {_show(k)} is also in {where[k]} (overlapping shards)")
            cells[k], where[k] = c, f
    expected = {tuple(c) for s in split[1] for c in s} if split else set(cells)
    missing = sorted(expected - set(cells), key=_grid_order(ref["recipe"]))
    if missing and not allow_partial:
        raise ShardError("merge", _missing_message(missing, len(expected), split[1] if split else [], files, docs))
    order = sorted(cells, key=_grid_order(ref["recipe"]))
    phase2: dict[str, Any] = {}
    for d in docs:
        for k, v in (d.get("phase2") or {}).items():
            if v and k not in phase2:
                phase2[k] = v
    merged = {
        "kind": "claimscope.replication",
        "version": ref.get("version", 1),
        "scale": ref.get("scale"),
        "recipe": ref.get("recipe"),
        "seeds": ref.get("seeds"),
        "environment": ref.get("environment"),
        "cells": [cells[k] for k in order],
        "phase2": phase2,
        "gaps": [g for d in docs for g in d.get("gaps") or []],
        "paper_source": ref.get("paper_source"),
        # the shards ran side by side: the grid took as long as the slowest one
        "wall_seconds": max(float(d.get("wall_seconds") or 0.0) for d in docs),
        "merged_from": [
            {
                "file": str(f),
                "shard": f"{d['shard']['index']}/{d['shard']['count']}" if d.get("shard") else None,
                "cells": len(d["cells"]),
                "wall_seconds": d.get("wall_seconds"),
                "gpu": (d.get("environment") or {}).get("gpu"),
            }
            for f, d in zip(files, docs, strict=True)
        ],
    }
    if missing:
        merged["partial"] = True
        merged["missing_cells"] = [list(k) for k in missing]
    return merged


def _missing_message(
    missing: list[CellKey], total: int, assignment: list[Any], files: list[Path], docs: list[dict[str, Any]]
) -> str:
    """Which cells are missing, grouped by the shard that should have run them and naming its file if given."""
    owner = {tuple(c): i for i, s in enumerate(assignment) for c in s}
    given = {d["shard"]["index"]: f for f, d in zip(files, docs, strict=True) if d.get("shard")}
    parts = []
    for k in sorted({owner.get(c, -1) for c in missing}):
        cells = [c for c in missing if owner.get(c, -1) == k]
        src = f"shard {k}/{len(assignment)}: " + (f"{given[k]} lacks" if k in given else "no file given, so")
        parts.append(f"{src} {', '.join(map(_show, cells))}")
    return f"{len(missing)} of {total} cells missing ({'; '.join(parts)}); pass --allow-partial to merge anyway"


def _grid_order(recipe: dict[str, Any]) -> Any:
    """Sort key putting cells in an unsharded run's order (seed, setting, MLM, target as the recipe lists them)."""
    index = {name: {json.dumps(v): i for i, v in enumerate(recipe.get(name) or [])}
             for name in ("seeds", "intermediate", "mlm_cotrain", "targets")}  # fmt: skip

    def key(k: CellKey) -> tuple[int, ...]:
        setting, mlm, seed, target = k
        vals = (("seeds", seed), ("intermediate", setting), ("mlm_cotrain", mlm), ("targets", target))
        return tuple(index[n].get(json.dumps(v), len(index[n])) for n, v in vals)

    return key
