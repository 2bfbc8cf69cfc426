"""Corpus sources streamed as documents -> passage rows, without holding the corpus in memory.

Three kinds, told apart by the path (and the first row of a JSONL file):
- `scifact`: a SciFact-style corpus.jsonl (`{doc_id, title, abstract: [sentences]}`); windows of `window` sentences
  (stride 1) over the abstract; window 1 gives exactly verify.scifact's per-sentence passages (paper `scifact:<id>`,
  section `s<i>`).
- `passages`: a JSONL of claimscope Passages (a run's passages.jsonl), one document per line.
- `folder`: a folder of papers (PDF, text, Markdown, HTML), read with retrieve's `read_document` and cut into sentence
  windows with retrieve's `paper_passages`; files named by arXiv id (`2005.13013v2.pdf`) get that key, other files
  their stem. An unreadable file is skipped with a warning (counted in `skipped`).

Each passage row carries its paper's title where the source gives one: the SciFact row's `title`; for a folder, the
title retrieve's reader found (`ParsedDoc.meta["title"]`: PDF metadata or first-page heading, HTML <title>, ...);
a passages JSONL has none.

`stream(start)` yields (document index, passage rows) from document `start` on; documents before it are skipped
without being parsed, which is what makes resuming a killed ingestion cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from claimscope.errors import ClaimscopeError
from claimscope.rundir import sha256_file
from claimscope.settings import RetrieveSettings
from claimscope.types import Paper, PaperRef, Passage
from claimscope.verify.corpus.shards import passage_row

logger = logging.getLogger(__name__)


class BadCorpus(ClaimscopeError):
    pass


def detect_kind(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.is_file():
        raise BadCorpus(str(path), "corpus not found")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadCorpus(f"{path}:{n}", f"not JSON: {e.msg}; expected a SciFact corpus or passages JSONL") from e
            if isinstance(row, dict) and "abstract" in row and "doc_id" in row:
                return "scifact"
            if isinstance(row, dict) and "text" in row and "paper" in row:
                return "passages"
            raise BadCorpus(f"{path}:{n}", "neither a SciFact corpus row {doc_id, title, abstract} nor a passage "
                                           "{paper, page, start, end, text}")
    raise BadCorpus(str(path), "empty corpus file")


class CorpusSource:
    """A corpus path read as a stream of documents."""

    def __init__(self, path: Path, kind: str | None = None, window: int | None = None,
                 settings: RetrieveSettings | None = None) -> None:
        self.path = Path(path)
        self.kind = kind or detect_kind(self.path)
        self.settings = settings or RetrieveSettings()
        self.window = window or (1 if self.kind == "scifact" else self.settings.window_sentences)
        self.skipped: list[str] = []

    def fingerprint(self) -> str:
        """What decides the passages: the kind, windowing and the source's content (file hash; for a folder the
        names, sizes and modification times of its paper files)."""
        h = hashlib.sha256(f"{self.kind}|{self.window}|{self.settings.window_stride}|".encode())
        if self.kind == "folder":
            for p in self._files():
                st = p.stat()
                h.update(f"{p.relative_to(self.path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        else:
            h.update(sha256_file(self.path).encode())
        return h.hexdigest()

    def stream(self, start: int = 0) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        if self.kind == "scifact":
            yield from self._scifact(start)
        elif self.kind == "passages":
            yield from self._passages(start)
        elif self.kind == "folder":
            yield from self._folder(start)
        else:
            raise BadCorpus(str(self.path), f"unknown corpus kind {self.kind!r}")

    # ---- JSONL kinds ------------------------------------------------------------------------------------------
    def _lines(self, start: int) -> Iterator[tuple[int, int, str]]:
        """(document index, line number, line) of non-blank lines from document `start` on."""
        doc = -1
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                doc += 1
                if doc >= start:
                    yield doc, n, line

    def _scifact(self, start: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        for doc, n, line in self._lines(start):
            try:
                row = json.loads(line)
                sents = [str(s) for s in row["abstract"]]
                key = f"scifact:{int(row['doc_id'])}"
                title = str(row.get("title") or "").strip() or None
            except json.JSONDecodeError as e:
                raise BadCorpus(f"{self.path}:{n}", f"not a SciFact corpus row: not JSON: {e.msg}") from e
            except KeyError as e:
                raise BadCorpus(f"{self.path}:{n}", f"not a SciFact corpus row: missing field {e}") from e
            except (TypeError, ValueError) as e:
                raise BadCorpus(f"{self.path}:{n}", f"not a SciFact corpus row: {type(e).__name__}: {e}") from e
            yield doc, [passage_row(p, title) for p in sentence_windows(key, sents, self.window)]

    def _passages(self, start: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        for doc, n, line in self._lines(start):
            try:
                p = Passage.model_validate_json(line)
            except ValidationError as e:
                raise BadCorpus(f"{self.path}:{n}", f"not a passage: {_first_problem(e)}") from e
            yield doc, [passage_row(p)]

    # ---- folder of papers -------------------------------------------------------------------------------------
    def _files(self) -> list[Path]:
        from claimscope.retrieve.local import FORMATS, inside_folder, is_folder_note

        return sorted(p for p in self.path.rglob("*")
                      if p.suffix.lower() in FORMATS and inside_folder(p, self.path) and not is_folder_note(p))

    def _folder(self, start: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        from claimscope.retrieve.local import FORMATS, parse_filename, read_document
        from claimscope.retrieve.passages import paper_passages

        for doc, path in enumerate(self._files()):
            if doc < start:
                continue
            fmt = FORMATS[path.suffix.lower()]
            lf = parse_filename(path)
            ref = (PaperRef(arxiv_id=lf.arxiv_id, version=lf.version) if lf is not None
                   else PaperRef(local_name=path.stem))
            try:
                parsed = read_document(path, fmt, self.settings)
                paper = Paper(ref=ref, sha256=sha256_file(path), source="local", path=str(path),
                              fmt=fmt, pages=len(parsed.pages))
                passages = paper_passages(paper, parsed, window_sentences=self.window,
                                          stride=self.settings.window_stride)
            except (ClaimscopeError, OSError) as e:
                logger.warning("skipping %s: %s", path, e)
                self.skipped.append(f"{path}: {e}")
                yield doc, []
                continue
            title = str(parsed.meta.get("title") or "").strip() or None
            yield doc, [passage_row(p, title) for p in passages]


def _first_problem(e: ValidationError) -> str:
    """A pydantic error as a user reads it: "missing field 'text'", "not JSON: ...", "page: Input should be ..."."""
    err = e.errors()[0]
    where = ".".join(str(x) for x in err.get("loc", ()))
    if err["type"] == "json_invalid":
        return f"not JSON: {err['msg']}"
    if err["type"] == "missing":
        return f"missing field {where!r}"
    return f"{where}: {err['msg']}" if where else err["msg"]


def sentence_windows(key: str, sentences: list[str], window: int = 1) -> list[Passage]:
    """Windows of `window` sentences (stride 1) over an abstract whose sentences are joined by single spaces;
    `start`/`end` index that joined text, section `s<i>` names the first sentence. Window 1 = verify.scifact's
    `doc_passages`."""
    from claimscope.retrieve.passages import _windows

    starts = []
    pos = 0
    for s in sentences:
        starts.append(pos)
        pos += len(s) + 1
    out = []
    for i, j in _windows(len(sentences), window, 1):
        text = " ".join(sentences[i:j])
        out.append(Passage(paper=key, page=1, section=f"s{i}", start=starts[i], end=starts[i] + len(text), text=text))
    return out
