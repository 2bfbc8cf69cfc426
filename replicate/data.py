"""Task data: the same examples from local JSONL/TSV files or from Hugging Face datasets (the hub path).

Local layout: `DATA_DIR/<task>/<split>.<lang>.jsonl` (or `.jsonl.gz`, or `.tsv` with a header row); English
training data may also be `<split>.jsonl`. Example fields per task kind:

- classification: text_a, text_b (optional), label (name or index)
- multiple_choice: context, question (optional), choices (list), label (index)
- qa: id, context, question, answers {text: [...], answer_start: [...]} (SQuAD format)
- tagging: tokens (list), tags (list)
- retrieval: src_id, src, tgt_id, tgt (a gold pair); rows with only src or only tgt are distractors (BUCC)
- mlm: text, lang (optional)
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from .config import TaskSpec
from .errors import BadDataFile, DataNotFound

logger = logging.getLogger(__name__)

Example = dict[str, Any]

_REQUIRED = {
    "classification": ("text_a", "label"),
    "multiple_choice": ("choices", "label"),
    "qa": ("context", "question", "answers"),
    "tagging": ("tokens", "tags"),
    "retrieval": (),
    "mlm": ("text",),
}

# XTREME config names use language names (UD-POS) or ISO 639-3 codes (Tatoeba).
UDPOS_NAMES = {
    "en": "English", "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}  # fmt: skip
TATOEBA_CODES = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
    "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
    "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn",
}  # fmt: skip


def load_examples(
    task: TaskSpec,
    split: str,
    lang: str = "en",
    *,
    source: str = "local",
    data_dir: str | Path | None = None,
    limit: int | None = None,
) -> list[Example]:
    """Examples of one task, split ("train", "dev", "test") and language, checked for the fields the kind needs."""
    if source == "local":
        if data_dir is None:
            raise DataNotFound(task.name, "data_source is local but no data_dir was given")
        rows = _load_local(Path(data_dir), task, split, lang)
    elif source == "hub":
        rows = _load_hub(task, split, lang)
    else:
        raise DataNotFound(task.name, f"unknown data source {source!r}")
    if limit is not None:
        rows = rows[:limit]
    need = _REQUIRED[task.kind]
    for i, row in enumerate(rows):
        missing = [k for k in need if k not in row]
        if missing:
            raise BadDataFile(f"{task.name}/{split}.{lang}#{i}", f"missing field(s) {', '.join(missing)}")
    return rows


def local_path(data_dir: Path, task: str, split: str, lang: str) -> Path | None:
    folder = data_dir / task
    names = [f"{split}.{lang}"] + ([split] if lang == "en" else [])
    for stem in names:
        for ext in (".jsonl", ".jsonl.gz", ".tsv"):
            p = folder / f"{stem}{ext}"
            if p.exists():
                return p
    return None


def _load_local(data_dir: Path, task: TaskSpec, split: str, lang: str) -> list[Example]:
    path = local_path(data_dir, task.name, split, lang)
    if path is None:
        raise DataNotFound(str(data_dir / task.name / f"{split}.{lang}.jsonl"), "no such data file (.jsonl or .tsv)")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        if path.suffix == ".gz":
            import gzip

            text = gzip.decompress(path.read_bytes()).decode("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise BadDataFile(f"{path}:{n}", f"not JSON: {e.msg}") from e
        return out
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    for row in rows:  # list-valued columns are space-separated (tokens/tags) or JSON (choices/answers)
        for key in ("tokens", "tags"):
            if key in row:
                row[key] = row[key].split(" ")
        for key in ("choices", "answers"):
            if key in row and isinstance(row[key], str):
                row[key] = json.loads(row[key])
        if "label" in row and task.kind == "multiple_choice":
            row["label"] = int(row["label"])
    return rows


def _hf_split(split: str) -> str:
    return {"dev": "validation"}.get(split, split)


def _load_hub(task: TaskSpec, split: str, lang: str) -> list[Example]:
    try:
        import datasets
    except ImportError as e:
        raise DataNotFound(task.name, "the hub data path needs `datasets` (pip install 'claimscope[hub]')") from e
    if not task.hf:
        raise DataNotFound(task.name, "has no public hub dataset; give local files with --data-dir")
    spec = dict(task.hf)
    if split in ("train", "dev") and split in spec:  # e.g. XQuAD/MLQA train and select on SQuAD
        spec = dict(spec[split])
    paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
    name = spec.get("name")
    if name:
        name = name.format(lang=lang, lang_name=UDPOS_NAMES.get(lang, lang), lang3=TATOEBA_CODES.get(lang, lang))
    rows: list[Example | None] = []
    for path in paths:
        hf_split = _hf_split(split)
        if path == "google/xtreme" and task.name in ("xquad", "tatoeba", "bucc"):
            hf_split = "validation" if task.name != "bucc" else ("validation" if split == "dev" else "test")
        parts = [(None, f"{hf_split}_r{r}") for r in ("1", "2", "3")] if path == "facebook/anli" else [(name, hf_split)]
        for cfg, sp in parts:
            try:
                ds = datasets.load_dataset(path, cfg, split=sp) if cfg else datasets.load_dataset(path, split=sp)
            except (ValueError, KeyError, FileNotFoundError) as e:  # no such config/split for this language
                raise DataNotFound(f"{path}:{cfg or ''}:{sp}", str(e).splitlines()[0][:200]) from e
            if task.name == "xnli" and path == "google/xtreme":
                ds = ds.filter(lambda x: x["language"] == lang)
            if task.name == "tydiqa":
                ds = ds.filter(lambda x: x["id"].split("-")[0] == _TYDI_LANG.get(lang, lang))
            names = _tag_names(ds)
            rows += [_convert(task, dict(x), lang, i, names) for i, x in enumerate(ds)]
    return [r for r in rows if r is not None]


def _tag_names(ds: Any) -> list[str] | None:
    """Class names of an integer-coded tag column (UD-POS, PAN-X), so tags read e.g. B-PER instead of 1."""
    features = getattr(ds, "features", None) or {}
    for key in ("ner_tags", "pos_tags"):
        feat = features.get(key) if hasattr(features, "get") else None
        names = getattr(getattr(feat, "feature", None), "names", None)
        if names:
            return list(names)
    return None


_TYDI_LANG = {"en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
              "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}  # fmt: skip


def _convert(
    task: TaskSpec, x: dict[str, Any], lang: str, index: int = 0, names: list[str] | None = None
) -> Example | None:
    """One hub row into this package's example fields."""
    k = task.kind
    if k == "classification":
        a = x.get("premise", x.get("sentence1", x.get("question1")))
        b = x.get("hypothesis", x.get("sentence2", x.get("question2")))
        label = x.get("label", x.get("gold_label"))
        if isinstance(label, int) and label < 0:
            return None  # unlabeled SNLI/MNLI rows
        if isinstance(label, int):
            label = task.labels[label]
        return {"text_a": a, "text_b": b, "label": str(label)}
    if k == "multiple_choice":
        if "endings" in x:  # HellaSwag
            return {"context": x["ctx"], "choices": x["endings"], "label": int(x["label"] or 0)}
        if "answer0" in x:  # CosmosQA
            choices = [x[f"answer{i}"] for i in range(4)]
            return {"context": x["context"], "question": x["question"], "choices": choices, "label": int(x["label"])}
        if "choices" in x:  # CommonsenseQA
            labels = list(x["choices"]["label"])
            key = x.get("answerKey") or labels[0]
            return {"question": x["question"], "context": "", "choices": list(x["choices"]["text"]),
                    "label": labels.index(key)}  # fmt: skip
    if k == "qa":
        answers = {"text": list(x["answers"]["text"]), "answer_start": list(x["answers"]["answer_start"])}
        return {"id": str(x["id"]), "context": x["context"], "question": x["question"], "answers": answers}
    if k == "tagging":
        tags = x.get("ner_tags", x.get("pos_tags"))
        if tags is None:
            raise DataNotFound(task.name, "a tagging row without ner_tags or pos_tags")
        return {
            "tokens": list(x["tokens"]),
            "tags": [names[t] if names and isinstance(t, int) else str(t) for t in tags],
        }
    if k == "retrieval":
        return {"src_id": f"{lang}-{index}", "src": x.get("source_sentence"), "tgt_id": f"en-{index}",
                "tgt": x.get("target_sentence")}  # fmt: skip
    raise DataNotFound(task.name, f"no hub converter for kind {k}")


def write_jsonl(path: Path, rows: list[Example]) -> None:
    """Write examples as JSONL (used by tests and the miniature data preparation)."""
    from .fileio import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
