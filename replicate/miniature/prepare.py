"""Build the miniature XTREME from Debian's translated package descriptions, with a manifest.

Tasks written in the pipeline's local data layout (`DATA_DIR/<task>/<split>.<lang>.jsonl.gz`):

- `mlm`      multilingual MLM corpus: every description in every language, minus all held-out evaluation items
- `debsec`   target: the package's Debian section from its description; English train/dev, test in every language
             (the same labels on the translations: zero-shot cross-lingual transfer)
- `debret`   retrieval, no training data: find the English short description of each translated one (Tatoeba protocol)
- `debmatch` English intermediate task, distinct from the target: pick a package's short description from four,
             given its long description (multiple choice)

Held-out items (target test and retrieval test, in any language) are removed from every training set and from the MLM
corpus, so no evaluation text is ever seen in training.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import DataNotFound
from ..fileio import write_json
from .debian import DEFAULT_LANGUAGES, Description, load_sections, load_translations, sha256_file

logger = logging.getLogger(__name__)

# Topical sections (library/packaging sections such as libs, perl or golang are predictable from a package name alone).
TOPIC_SECTIONS = ("admin", "database", "editors", "electronics", "games", "graphics", "mail", "math", "net", "science",
                  "sound", "text", "utils", "video", "web", "x11")  # fmt: skip
MAX_CHARS = 600


def _gz_jsonl(path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(gzip.compress(data, mtime=0))
    tmp.replace(path)
    return {"path": str(path), "rows": len(rows), "sha256": sha256_file(path)}


def _clip(text: str) -> str:
    return text[:MAX_CHARS].rsplit(" ", 1)[0] if len(text) > MAX_CHARS else text


def _release_info(lists_dir: Path) -> dict[str, str]:
    for p in sorted(lists_dir.glob("*_dists_*_InRelease")):
        if "-security" in p.name or "-updates" in p.name:
            continue
        head = p.read_text(encoding="utf-8", errors="replace")[:4000]
        info = {
            k: m.group(1).strip()
            for k in ("Origin", "Suite", "Codename", "Date")
            if (m := re.search(rf"^{k}: (.*)$", head, re.M))
        }
        return info
    return {}


def prepare(
    lists_dir: Path,
    out_dir: Path,
    *,
    languages: tuple[str, ...] | list[str] = DEFAULT_LANGUAGES,
    n_sections: int = 8,
    n_test: int = 500,
    n_retrieval: int = 500,
    n_dev: int = 500,
    mlm_cap: int = 20000,
    match_cap: int = 10000,
    max_share: float = 0.3,
    min_test: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Write every task's files under `out_dir` and `manifest.json`; returns the manifest."""
    rng = random.Random(seed)
    if "en" not in languages:
        raise DataNotFound("languages", "English ('en') is needed: it is the training language")
    en = load_translations(lists_dir, "en")
    sections = load_sections(lists_dir)
    trans: dict[str, dict[str, Description]] = {}
    for lang in languages:
        if lang == "en":
            continue
        try:
            trans[lang] = {m: d for m, d in load_translations(lists_dir, lang).items() if m in en}
        except DataNotFound as e:
            logger.warning("%s", e)
    if not trans:
        raise DataNotFound(str(lists_dir), "no translations for any requested language")

    # the label set: the most frequent topical sections among English descriptions
    counts = Counter(sections.get(m) for m in en)
    labels = sorted(s for s, _ in Counter({s: counts[s] for s in TOPIC_SECTIONS}).most_common(n_sections))
    labelled = {m for m in en if sections.get(m) in labels}

    # Test items: prefer descriptions translated into many languages, so the languages share items (as in XNLI) and
    # the held-out set stays small; at most `max_share` of a language's pairs go to each of its test sets.
    coverage = Counter(m for t in trans.values() for m in t)
    tiebreak = {m: rng.random() for m in en}

    def ranked(ms: list[str]) -> list[str]:
        return sorted(ms, key=lambda m: (-coverage[m], tiebreak[m]))

    held_out: set[str] = set()
    sec_test: dict[str, list[str]] = {}
    ret_test: dict[str, list[str]] = {}
    for lang in sorted(trans):
        cap = int(max_share * len(trans[lang]))
        sec_test[lang] = ranked([m for m in trans[lang] if m in labelled])[: min(n_test, cap)]
        held_out.update(sec_test[lang])
    for lang in sorted(trans):
        cap = int(max_share * len(trans[lang]))
        seen_short: set[str] = set()
        picked = []
        for m in ranked([m for m in trans[lang] if m not in labelled or m not in held_out]):
            s = en[m].short.lower()
            if len(s.split()) >= 4 and s not in seen_short and trans[lang][m].short.strip():
                seen_short.add(s)
                picked.append(m)
            if len(picked) >= min(n_retrieval, cap):
                break
        ret_test[lang] = picked
    held_out.update(m for ms in ret_test.values() for m in ms)
    sec_test = {lang: ms for lang, ms in sec_test.items() if len(ms) >= min_test}
    # English test: the English originals of every language's test items
    en_test = sorted({m for ms in sec_test.values() for m in ms})

    files: dict[str, Any] = {}
    out = Path(out_dir)

    def sec_row(d: Description, m: str) -> dict[str, Any]:
        return {"text_a": _clip(d.text), "label": sections[m], "md5": m}

    train_pool = sorted(m for m in labelled if m not in held_out)
    rng.shuffle(train_pool)
    files["debsec/dev.en"] = _gz_jsonl(
        out / "debsec" / "dev.en.jsonl.gz", [sec_row(en[m], m) for m in train_pool[:n_dev]]
    )
    files["debsec/train.en"] = _gz_jsonl(
        out / "debsec" / "train.en.jsonl.gz", [sec_row(en[m], m) for m in train_pool[n_dev:]]
    )
    files["debsec/test.en"] = _gz_jsonl(out / "debsec" / "test.en.jsonl.gz", [sec_row(en[m], m) for m in en_test])
    for lang, ms in sec_test.items():
        files[f"debsec/test.{lang}"] = _gz_jsonl(
            out / "debsec" / f"test.{lang}.jsonl.gz", [sec_row(trans[lang][m], m) for m in ms]
        )
    for lang, ms in ret_test.items():
        rows: list[dict[str, Any]] = [
            {"src_id": f"{lang}:{m}", "src": trans[lang][m].short, "tgt_id": f"en:{m}", "tgt": en[m].short} for m in ms
        ]
        files[f"debret/test.{lang}"] = _gz_jsonl(out / "debret" / f"test.{lang}.jsonl.gz", rows)

    # intermediate: match a long description to its short description among 4 (English, not held out)
    match_pool = sorted(m for m in en if m not in held_out and en[m].long and m not in set(train_pool[:n_dev]))
    rng.shuffle(match_pool)
    match_pool = match_pool[: match_cap + n_dev]
    shorts = [en[m].short for m in match_pool]
    rows = []
    for i, m in enumerate(match_pool):
        wrong: set[str] = set()
        while len(wrong) < 3:
            j = rng.randrange(len(shorts))
            if j != i and shorts[j] != shorts[i]:
                wrong.add(shorts[j])
        choices = sorted(wrong) + [shorts[i]]
        rng.shuffle(choices)
        rows.append({"context": _clip(en[m].long), "choices": choices, "label": choices.index(shorts[i])})
    files["debmatch/dev.en"] = _gz_jsonl(out / "debmatch" / "dev.en.jsonl.gz", rows[:n_dev])
    files["debmatch/train.en"] = _gz_jsonl(out / "debmatch" / "train.en.jsonl.gz", rows[n_dev:])

    # MLM corpus: all languages, held-out items removed, capped per language
    mlm_counts: dict[str, int] = {}
    for lang, table in [("en", en), *sorted(trans.items())]:
        ms = sorted(m for m in table if m not in held_out)
        rng.shuffle(ms)
        rows = [{"text": _clip(table[m].text), "lang": lang} for m in ms[:mlm_cap]]
        mlm_counts[lang] = len(rows)
        files[f"mlm/train.{lang}"] = _gz_jsonl(out / "mlm" / f"train.{lang}.jsonl.gz", rows)

    sources = sorted(
        p for p in Path(lists_dir).iterdir() if p.is_file() and not p.name.startswith(".") and p.name != "lock"
    )
    manifest = {
        "kind": "claimscope.miniature.data",
        "source": "Debian translated package descriptions (DDTP) via apt-get update -o Acquire::Languages",
        "release": _release_info(Path(lists_dir)),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "languages": ["en", *sorted(trans)],
        "pairs_with_en": {lang: len(t) for lang, t in sorted(trans.items())},
        "labels": labels,
        "target_languages": ["en", *sorted(sec_test)],
        "retrieval_languages": sorted(lang for lang, ms in ret_test.items() if ms),
        "counts": {
            "debsec_test": {lang: len(ms) for lang, ms in sec_test.items()} | {"en": len(en_test)},
            "debret_test": {lang: len(ms) for lang, ms in ret_test.items()},
            "debsec_train": max(0, len(train_pool) - n_dev),
            "debmatch_train": files["debmatch/train.en"]["rows"],
            "mlm": mlm_counts,
            "held_out_descriptions": len(held_out),
        },
        "source_files": {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in sources},
        "files": files,
    }
    write_json(out / "manifest.json", manifest)
    return manifest
