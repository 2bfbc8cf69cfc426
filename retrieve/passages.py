"""Page text -> sentences -> overlapping sentence windows (Passages) with exact character spans."""

from __future__ import annotations

import bisect
import hashlib
import re
from typing import Any

from claimscope.types import Paper, ParsedDoc, Passage

# Tokens that end with a period but do not end a sentence (lowercased, without the final period).
ABBREVIATIONS = frozenset(
    "al e.g i.e cf vs v fig figs eq eqs eqn sec secs tab tabs no nos approx resp ref refs dr mr mrs ms prof "
    "st jr sr inc ltd corp co univ dept ch app appx def thm lem prop cor viz ca pp p vol ed eds et seq "
    "incl est max min avg std var a.k.a w.r.t u.s u.k jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
# candidate boundary: sentence punctuation, optional closing quotes/brackets, whitespace
_CANDIDATE = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)")
_PARA_BREAK = re.compile(r"\n\s*\n")
_NEXT_START = re.compile(r"\s+([\"'\u201c\u2018(\[\u2022]?[A-Z0-9\u0391-\u03a9])")
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")  # "e.g", "i.e", "u.s.a"
_ALNUM = re.compile(r"[^\W_]")  # what str.isalnum accepts
MAX_SENTENCE_CHARS = 800


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at text[dot] belongs to an abbreviation or an initial."""
    start = dot
    while start > 0 and not text[start - 1].isspace():  # walk back to the start of the token (no regex: O(token))
        start -= 1
    token = text[start:dot].lstrip("([\"'\u201c").lower()
    if not token:
        return False
    if token in ABBREVIATIONS:
        return True
    if len(token) == 1 and token.isalpha():  # initials: "Samuel R. Bowman"
        return True
    if _DOTTED.fullmatch(token):  # "e.g", "i.e", "u.s.a"
        return True
    return False


def _split_long(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Cut a run-on span (a table, a list without periods) at whitespace into pieces of bounded length."""
    spans: list[tuple[int, int]] = []
    while end - start > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", start + MAX_SENTENCE_CHARS // 2, start + MAX_SENTENCE_CHARS)
        if cut <= start:
            cut = start + MAX_SENTENCE_CHARS
        spans.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        spans.append((start, end))
    return spans


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end) of `text`; `text[start:end]` is the sentence without surrounding whitespace.

    Paragraph breaks (blank lines) always end a sentence. A period does not end a sentence after abbreviations
    ("et al.", "e.g.", "Fig.", "vs."), initials ("R. Bowman"), inside numbers ("6.1"), or before a lowercase word.
    """
    cuts: list[int] = []
    for m in _CANDIDATE.finditer(text):
        end = m.end()
        nxt = _NEXT_START.match(text, end)
        if not nxt:
            if _PARA_BREAK.match(text, end):
                cuts.append(end)
            continue
        if m.group(0)[0] == "." and not m.group(0).startswith("..") and _is_abbreviation(text, m.start()):
            continue
        cuts.append(end)
    for m in _PARA_BREAK.finditer(text):
        cuts.append(m.start())
    cuts = sorted(set(cuts))

    spans: list[tuple[int, int]] = []
    prev = 0
    for cut in [*cuts, len(text)]:
        s, e = prev, cut
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s and _ALNUM.search(text, s, e):
            spans.extend(_split_long(text, s, e))
        prev = cut
    return spans


def _windows(n: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Index ranges [i, j) of sentence windows covering all n sentences."""
    if n == 0:
        return []
    size = max(1, size)
    stride = min(max(1, stride), size)  # a stride wider than the window would drop sentences
    if n <= size:
        return [(0, n)]
    out = [(i, i + size) for i in range(0, n - size + 1, stride)]
    if out[-1][1] < n:
        out.append((n - size, n))
    return out


def _passage_id(key: str, page: int, start: int, text: str) -> str:
    """`content_id(key, page, start, text)` (the id Passage derives) with one hash update instead of eight."""
    return hashlib.sha256(f"{key}\x1f{page}\x1f{start}\x1f{text}\x1f".encode()).hexdigest()[:16]


_setattr = object.__setattr__


def _construct_fast(values: dict[str, Any]) -> Passage:
    """What `Passage.model_construct(**values)` does when every field is given, without its per-field loop."""
    m = Passage.__new__(Passage)
    _setattr(m, "__dict__", values)
    _setattr(m, "__pydantic_fields_set__", set(values))
    _setattr(m, "__pydantic_extra__", None)
    _setattr(m, "__pydantic_private__", None)
    return m


def _construct_checked() -> Any:
    """`_construct_fast` when it builds exactly what model_construct builds on this pydantic, else model_construct."""
    probe: dict[str, Any] = {
        "id": "0",
        "paper": "p",
        "arxiv_id": None,
        "version": None,
        "page": 1,
        "section": None,
        "start": 0,
        "end": 1,
        "text": "x",
    }
    try:
        fast, ref = _construct_fast(dict(probe)), Passage.model_construct(**probe)
        if (
            set(probe) == set(Passage.model_fields)
            and not Passage.__pydantic_post_init__
            and fast == ref
            and fast.__pydantic_fields_set__ == ref.__pydantic_fields_set__
            and fast.model_dump() == ref.model_dump()
        ):
            return _construct_fast
    except Exception:  # any mismatch with pydantic internals: use the public API
        pass
    return lambda values: Passage.model_construct(**values)


_construct = _construct_checked()


def paper_passages(paper: Paper, doc: ParsedDoc, *, window_sentences: int = 2, stride: int = 1) -> list[Passage]:
    """Overlapping windows of `window_sentences` sentences per page, each an exact slice of its page text.

    `passage.text == page.text[passage.start:passage.end]` always holds, so a quote taken from a passage is an exact
    substring of the paper's page text. `section` is the nearest heading at or before the window (carried over from
    earlier pages).
    """
    out: list[Passage] = []
    section: str | None = None
    key = paper.ref.key
    arxiv_id, version = paper.ref.arxiv_id, paper.ref.version
    for page in doc.pages:
        text = page.text
        number = page.number
        heads = sorted(page.headings)
        offsets = [h[0] for h in heads]
        sents = split_sentences(text)
        for i, j in _windows(len(sents), window_sentences, stride):
            start, end = sents[i][0], sents[j - 1][1]
            k = bisect.bisect_right(offsets, start) - 1
            sec = heads[k][1] if k >= 0 else section
            # fields built right here: skip validation (hot loop); the id is the one Passage derives
            chunk = text[start:end]
            out.append(
                _construct(
                    {
                        "id": _passage_id(key, number, start, chunk),
                        "paper": key,
                        "arxiv_id": arxiv_id,
                        "version": version,
                        "page": number,
                        "section": sec,
                        "start": start,
                        "end": end,
                        "text": chunk,
                    }
                )
            )
        if heads:
            section = heads[-1][1]
    return out
