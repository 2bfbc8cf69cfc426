"""Recipe configs: which model, which intermediate and target tasks, which hyper-parameters.

Plain dataclasses + YAML (no pydantic) so this package runs on a machine that has only torch and transformers.
A recipe names tasks from `configs/tasks.yaml`; `task_overrides` changes any task field for one recipe.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import BadRecipe

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
KINDS = ("classification", "multiple_choice", "qa", "tagging", "retrieval", "mlm")
MULTITASK = "multitask"


@dataclass
class TaskSpec:
    """One task: its kind, data source, languages and its published training configuration."""

    name: str
    kind: str
    role: str = "target"  # "intermediate" or "target"
    labels: list[str] = field(default_factory=list)
    num_choices: int = 0
    hf: dict[str, Any] | None = None
    languages: list[str] = field(default_factory=lambda: ["en"])
    train_size: int = 0
    dev_size: int = 0
    test_size: int = 0
    batch_size: int = 32
    epochs: float = 1.0
    max_len: int = 128
    lr: float = 1e-5
    doc_stride: int = 128
    max_answer_len: int = 30
    metric: str = "accuracy"
    protocol: str = ""  # retrieval: "bucc" or "tatoeba"
    early_stop_dev: int = 500  # model selection on the first N English dev examples (paper A.1); 0 = all of dev
    select_on_dev: bool = True  # False where the only "dev" data is the test set (TyDiQA-GoldP)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BadRecipe(self.name, f"unknown task kind {self.kind!r}; one of {', '.join(KINDS)}")
        for size in ("batch_size", "max_len"):
            if getattr(self, size) < 1:
                raise BadRecipe(self.name, f"{size} must be at least 1, not {getattr(self, size)}")
        if self.epochs <= 0 or self.lr <= 0:
            raise BadRecipe(self.name, f"epochs and lr must be positive, not {self.epochs} and {self.lr}")

    @property
    def trained(self) -> bool:
        return self.kind != "retrieval"


@dataclass
class TrainSpec:
    """How to train: the speed switches and the optimiser settings shared by all tasks."""

    precision: str = "bf16"  # "bf16" (autocast on CUDA; fp32 on CPU) or "fp32"
    compile: bool = False
    fused_adamw: bool = True  # only on CUDA
    attn_implementation: str = "sdpa"
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    per_device_batch: int | None = None  # None: the task's batch size split over ranks; else accumulate up to it
    bucket_size: int = 64  # batches per length bucket window (1 = no length bucketing)
    max_steps: int | None = None  # cap per phase (tests, smoke runs)
    limit_train: int | None = None  # examples per training set (miniature / tests)
    limit_eval: int | None = None  # examples per evaluation set and language
    mlm_lr: float = 5e-6  # intermediate lr with MLM co-training (paper A.1)
    mlm_probability: float = 0.15
    multitask_size_cap: int = 2**17  # K in r_m = min(e_m, K) / sum(...) (paper 3.1)
    eval_batch: int = 64
    select_on_dev: bool = True  # keep the best epoch by English dev score
    num_threads: int | None = None
    stack_cells: int = 1  # phase 3: train up to this many cells of one target as one batched model (replicate.stacked)
    # stacked training under bf16 autocast: LayerNorm outputs (the residual stream) stored in bf16 as Megatron-LM
    # does, not in fp32 as autocast leaves them (replicate.stacked_encoder); False: transformers' numerics
    bf16_residual: bool = True


@dataclass
class Recipe:
    """A grid of cells: model x intermediate setting x MLM co-training x target x seed."""

    name: str
    model: str
    description: str = ""
    scale: str = "full"  # "full" or "miniature"
    seeds: list[int] = field(default_factory=lambda: [1])
    intermediate: list[str | None] = field(default_factory=lambda: [None])
    mlm_cotrain: list[bool] = field(default_factory=lambda: [False])
    targets: list[str] = field(default_factory=list)
    data_source: str = "hub"  # "hub" (Hugging Face datasets) or "local"
    data_dir: str | None = None
    tokenizer: str | None = None  # defaults to the model
    retrieval_layer: int | None = None  # None: the middle layer (13 of 24 for large, 7 of 12 for base)
    multitask_tasks: list[str] = field(
        default_factory=lambda: ["anli_plus", "qqp", "hellaswag", "ccg", "cosmosqa", "commonsenseqa"]
    )
    train: TrainSpec = field(default_factory=TrainSpec)
    task_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # new tasks (role "target" unless given)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scale not in ("full", "miniature"):
            raise BadRecipe(self.name, f"scale must be full or miniature, not {self.scale!r}")
        if self.data_source not in ("hub", "local"):
            raise BadRecipe(self.name, f"data_source must be hub or local, not {self.data_source!r}")
        if not self.tasks:
            self.tasks = load_task_registry()
        for name, spec in self.extra_tasks.items():
            try:
                self.tasks[name] = TaskSpec(name=name, **checked(TaskSpec, {"role": "target", **spec},
                                                                 f"extra_tasks.{name}"))
            except TypeError as e:
                raise BadRecipe(f"{self.name}:{name}", str(e)) from e
        for name, over in self.task_overrides.items():
            if name not in self.tasks:
                raise BadRecipe(self.name, f"task_overrides names unknown task {name!r}")
            checked(TaskSpec, over, f"task_overrides.{name}")
            self.tasks[name] = dataclasses.replace(self.tasks[name], **over)
        if not self.seeds:
            raise BadRecipe(self.name, "seeds is empty: give at least one seed, e.g. [1]")
        for t in self.targets:
            if t not in self.tasks or self.tasks[t].role != "target":
                raise BadRecipe(self.name, f"unknown target task {t!r}")
        for i in self.intermediate:
            if i is None or i == MULTITASK:
                continue
            if i not in self.tasks or self.tasks[i].role != "intermediate":
                raise BadRecipe(self.name, f"unknown intermediate task {i!r}")

    def task(self, name: str) -> TaskSpec:
        try:
            return self.tasks[name]
        except KeyError:
            raise BadRecipe(self.name, f"unknown task {name!r}") from None

    def intermediate_tasks(self, setting: str | None, mlm: bool) -> list[str]:
        """The tasks trained in phase 2 for one intermediate setting (MLM appended when co-training)."""
        names: list[str] = []
        if setting == MULTITASK:
            names = list(self.multitask_tasks)
        elif setting is not None:
            names = [setting]
        if mlm and names:
            names.append("mlm")
        return names

    def phase2_groups(self) -> list[tuple[str | None, bool, int]]:
        """Distinct (intermediate setting, MLM, seed) groups; each trains phase 2 once and serves every target."""
        out: list[tuple[str | None, bool, int]] = []
        for seed in self.seeds:
            for inter in self.intermediate:
                for mlm in self.mlm_cotrain:
                    if inter is None and mlm:
                        continue  # the baseline has no intermediate phase to co-train with
                    out.append((inter, mlm, seed))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        used = set(self.targets) | {t for i in self.intermediate for t in self.intermediate_tasks(i, True)}
        d["tasks"] = {k: v for k, v in d["tasks"].items() if k in used}
        return d


def load_task_registry(path: Path | None = None) -> dict[str, TaskSpec]:
    path = path or CONFIG_DIR / "tasks.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, TaskSpec] = {}
    for role, block in (("intermediate", raw.get("intermediate", {})), ("target", raw.get("targets", {}))):
        for name, spec in block.items():
            try:
                out[name] = TaskSpec(name=name, role=role, **spec)
            except TypeError as e:
                raise BadRecipe(f"{path}:{name}", str(e)) from e
    return out


def checked(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """`data` for the dataclass `cls`, each value checked against its field's type, so a recipe's typo or wrong
    type is named with the file at load time (e.g. `targets: xnli`, a string where a list belongs, was read as the
    targets 'x', 'n', 'l', 'i'; `seeds: one` planned nothing)."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in known]
    if unknown:
        raise BadRecipe(where, f"unknown field {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    for key, value in data.items():
        if not _fits(value, hints[key]):
            raise BadRecipe(where, f"{key} must be {_describe(hints[key])}, not {value!r}")
    return data


def _fits(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


_NAMES = {type(None): ("null", "nulls"), float: ("a number", "numbers"), int: ("an integer", "integers"),
          bool: ("true or false", "true/false values"), str: ("a string", "strings")}


def _describe(tp: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, plural) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0], plural=True)}"
    if origin is dict:
        return "mappings" if plural else "a mapping"
    return _NAMES[tp][plural] if tp in _NAMES else str(tp)


def list_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "tasks")


def recipe_from_dict(data: dict[str, Any], source: str = "<dict>") -> Recipe:
    data = dict(data)
    train = data.pop("train", None) or {}
    if not isinstance(train, dict):
        raise BadRecipe(source, f"train must be a mapping of training settings, not {train!r}")
    try:
        return Recipe(train=TrainSpec(**checked(TrainSpec, train, "train")), **checked(Recipe, data, source))
    except TypeError as e:
        raise BadRecipe(source, str(e)) from e
    except BadRecipe as e:  # name the file, then what in it
        if e.item == source:
            raise
        raise BadRecipe(source, e.problem if e.item == data.get("name") else f"{e.item}: {e.problem}") from e


def load_recipe(name_or_path: str | Path, **overrides: Any) -> Recipe:
    """Load a bundled config by name (`paper-grid`) or a YAML file by path; `overrides` replace top-level fields."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise BadRecipe(str(name_or_path), f"no such config; bundled: {', '.join(list_configs())}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise BadRecipe(str(path), f"not valid YAML: {where}{getattr(e, 'problem', None) or e}") from e
    if not isinstance(data, dict):
        raise BadRecipe(str(path), f"a recipe is a mapping of fields (model, targets, ...), not {data!r}")
    data.setdefault("name", path.stem)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return recipe_from_dict(data, str(path))
