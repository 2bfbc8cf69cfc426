"""Examples -> token features for each task kind (fast tokenizer needed: QA and tagging use offsets / word ids)."""

from __future__ import annotations

import logging
from typing import Any

from .config import TaskSpec
from .data import Example

logger = logging.getLogger(__name__)

Feature = dict[str, Any]


def label_index(task: TaskSpec, label: Any) -> int:
    if isinstance(label, int) and not isinstance(label, bool):
        return label
    s = str(label)
    if s in task.labels:
        return task.labels.index(s)
    if s.isdigit():
        return int(s)
    raise ValueError(f"{task.name}: label {s!r} is not one of {task.labels}")


def tag_labels(task: TaskSpec, examples: list[Example]) -> list[str]:
    """The tag set: the task's declared labels, else the sorted tags seen in the (English training) examples."""
    if task.labels:
        return list(task.labels)
    return sorted({t for ex in examples for t in ex["tags"]})


def featurize(
    task: TaskSpec, tokenizer: Any, examples: list[Example], *, train: bool, tags: list[str] | None = None
) -> list[Feature]:
    kind = task.kind
    if kind == "classification":
        return _cls(task, tokenizer, examples)
    if kind == "multiple_choice":
        return _mc(task, tokenizer, examples)
    if kind == "qa":
        return _qa(task, tokenizer, examples, train=train)
    if kind == "tagging":
        return _tag(task, tokenizer, examples, tags or tag_labels(task, examples))
    if kind == "mlm":
        enc = tokenizer([ex["text"] for ex in examples], truncation=True, max_length=task.max_len)
        return [{"input_ids": ids} for ids in enc["input_ids"]]
    if kind == "retrieval":
        raise ValueError("retrieval tasks are encoded by evaluate.encode_sentences, not featurize")
    raise ValueError(f"unknown kind {kind}")


def _cls(task: TaskSpec, tok: Any, examples: list[Example]) -> list[Feature]:
    a = [ex["text_a"] for ex in examples]
    b = [ex.get("text_b") for ex in examples]
    enc = tok(a, b if any(x is not None for x in b) else None, truncation=True, max_length=task.max_len)
    return [
        {"input_ids": ids, "labels": label_index(task, ex["label"])}
        for ids, ex in zip(enc["input_ids"], examples, strict=True)
    ]


def _mc(task: TaskSpec, tok: Any, examples: list[Example]) -> list[Feature]:
    out = []
    for ex in examples:
        first = " ".join(x for x in (ex.get("context") or "", ex.get("question") or "") if x).strip()
        choices = list(ex["choices"])
        enc = tok([first] * len(choices), choices, truncation=True, max_length=task.max_len)
        out.append({"input_ids": enc["input_ids"], "labels": int(ex["label"])})
    return out


def _qa(task: TaskSpec, tok: Any, examples: list[Example], *, train: bool) -> list[Feature]:
    """SQuAD features with a sliding window over long contexts (the standard HF `run_qa` preparation)."""
    questions = [ex["question"].lstrip() for ex in examples]
    contexts = [ex["context"] for ex in examples]
    enc = tok(
        questions,
        contexts,
        truncation="only_second",
        max_length=task.max_len,
        stride=task.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    out = []
    for i, ids in enumerate(enc["input_ids"]):
        ex_idx = enc["overflow_to_sample_mapping"][i]
        seq_ids = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i]
        feat: Feature = {"input_ids": ids, "example_index": ex_idx}
        if train:
            answers = examples[ex_idx]["answers"]
            start_pos = end_pos = 0
            if answers["answer_start"]:
                s_char = answers["answer_start"][0]
                e_char = s_char + len(answers["text"][0])
                ctx = [j for j, s in enumerate(seq_ids) if s == 1]
                if ctx and offsets[ctx[0]][0] <= s_char and offsets[ctx[-1]][1] >= e_char:
                    ts = ctx[0]
                    while ts <= ctx[-1] and offsets[ts][0] <= s_char:
                        ts += 1
                    te = ctx[-1]
                    while te >= ctx[0] and offsets[te][1] >= e_char:
                        te -= 1
                    start_pos, end_pos = ts - 1, te + 1
            feat["start_positions"] = start_pos
            feat["end_positions"] = end_pos
        else:
            feat["offset_mapping"] = [tuple(o) if s == 1 else None for o, s in zip(offsets, seq_ids, strict=True)]
        out.append(feat)
    return out


def _tag(task: TaskSpec, tok: Any, examples: list[Example], tags: list[str]) -> list[Feature]:
    """Label the first sub-word of each word; the other sub-words get -100 (paper A.1, as for CCG/POS/NER)."""
    index = {t: i for i, t in enumerate(tags)}
    enc = tok([ex["tokens"] for ex in examples], is_split_into_words=True, truncation=True, max_length=task.max_len)
    out = []
    for i, ex in enumerate(examples):
        word_ids = enc.word_ids(i)
        labels, first_pos, prev = [], [], None
        for pos, w in enumerate(word_ids):
            if w is None or w == prev:
                labels.append(-100)
            else:
                labels.append(index.get(ex["tags"][w], -100))
                first_pos.append((pos, w))
            prev = w
        out.append({"input_ids": enc["input_ids"][i], "labels": labels, "first_pos": first_pos})
    return out
