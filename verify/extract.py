"""Check-worthy claims from a paper, as whole sentences with page and section; and full sentences for cut-off claims.

`extract_claims` walks the parsed pages paragraph by paragraph, drops figure/table debris, captions, author lines and
the references, joins a paragraph that runs over a page (or around a figure) with its continuation, splits sentences,
and ranks them by a check-worthiness score (numbers, comparisons, contributions, introduction bullets).

`find_full_sentence` finds the complete sentence in a cited paper for a claim that a tool cut mid-word.
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from claimscope.errors import PaperNotFound
from claimscope.types import Claim, PaperRef, ParsedDoc

logger = logging.getLogger(__name__)

_BULLET = re.compile(r"^\s*(?:[•●▪◦‣∙·*]|[-–—](?=\s))\s*")
_CAPTION = re.compile(r"^(?:Table|Figure|Fig\.|Tab\.|Algorithm)\s*\d+[:.]", re.IGNORECASE)
_STOP_SECTIONS = re.compile(r"^(?:\d+(?:\.\d+)*\s*)?(?:references|bibliography|acknowledge?ments?)\b", re.IGNORECASE)
_APPENDIX = re.compile(r"^(?:[A-Z](?:\.\d+)*\s+)?(?:appendix|implementation details|supplementary)", re.IGNORECASE)
_FOOTNOTE_START = re.compile(r"(?<=\s)\d{1,2}(?=(?:If|The|We|This|In|For|See|Our|As|It|https?:|[A-Z][a-z]+\s))")
_FOOTNOTE_MARK = re.compile(r"(?<=[a-z)\]])([.,;:])\d{1,2}(?=\s|$)")
_ENDS_SENTENCE = re.compile(r"[.!?][\"'”’)\]]*$")
_STARTS_SENTENCE = re.compile(r"^[\"'“‘(\[]?[A-Z0-9]")
_GLUED_HYPHEN = re.compile(r"[a-z]- [a-z]")

_COMPARISON = re.compile(
    r"\b(outperform\w*|improv\w*|better than|worse than|higher than|lower than|gains?\b|boost\w*|surpass\w*|"
    r"exceed\w*|state[- ]of[- ]the[- ]art|significant\w*|yields?\b|leads? to|benefit\w*|degrad\w*|drops?\b|"
    r"reduc\w*|increas\w*|decreas\w*|compared (?:to|with)|over the baseline|on par)",
    re.IGNORECASE,
)
_CONTRIBUTION = re.compile(
    r"\b(we (?:show|find|found|propose|demonstrate|obtain|introduce|present|observe|report|achieve|conclude|"
    r"investigate|study|evaluate|use)|our (?:results|experiments|best|model|method|approach|analysis) "
    r"|results (?:show|suggest|indicate)|this (?:paper|work) (?:shows|presents|proposes))",
    re.IGNORECASE,
)
_HEDGE = re.compile(r"\b(future work|we leave|we hope|we plan|might|perhaps)\b", re.IGNORECASE)
_SECTION_WEIGHT = [
    (re.compile(r"abstract", re.I), 1.0),
    (re.compile(r"introduction", re.I), 0.5),
    (re.compile(r"result|experiment|conclusion|discussion|analysis|evaluation", re.I), 0.5),
    (re.compile(r"related work|background|prior work", re.I), -1.5),
]


@dataclass
class _Unit:
    """A stretch of running text (a paragraph, possibly joined across a page break, or one bullet item)."""

    text: str
    pages: list[tuple[int, int]]  # (char offset where a page starts in text, page number)
    section: str | None
    bullet: bool = False
    in_intro: bool = False

    def page_at(self, offset: int) -> int:
        page = self.pages[0][1]
        for start, number in self.pages:
            if start <= offset:
                page = number
        return page


@dataclass
class Sentence:
    text: str
    page: int
    section: str | None
    bullet: bool
    in_intro: bool


def normalize(text: str) -> str:
    """Lowercase alphanumeric words separated by single spaces (for de-duplication and matching)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(\w)-\s+(\w)", r"\1\2", text)  # hyphenation left by a line break
    return " ".join(re.findall(r"[a-z0-9]+", text))


def _is_debris(para: str) -> bool:
    """Figure-internal text, table rows, author lines: short, few lowercase words, or mostly numbers."""
    words = para.split()
    if len(words) < 6:
        return True
    alpha_words = [w for w in words if re.fullmatch(r"[A-Za-z][a-z’'-]+[.,;:]?", w)]
    if len(alpha_words) / len(words) < 0.5:
        return True
    digits = sum(c.isdigit() for c in para)
    if digits / max(1, len(para)) > 0.15:
        return True
    non_latin = sum(1 for c in para if ord(c) > 0x2FF and c not in "–—‘’“”•…×−≈≤≥")
    return non_latin > 3


def _cut_footnote(para: str) -> str:
    """Drop an inline footnote ("It is 1If a word is ... for that word.") and footnote markers ("parse.1 ")."""
    m = _FOOTNOTE_START.search(para)
    if m and m.start() > 20 and not _ENDS_SENTENCE.search(para[: m.start()].rstrip()):
        para = para[: m.start()].rstrip()
    return _FOOTNOTE_MARK.sub(r"\1", para)


def _join(a: str, b: str) -> str:
    if a.endswith("-") and len(a) > 1 and a[-2].isalpha() and b[:1].islower():
        return a[:-1] + b  # "tar-" + "get tasks" -> "target tasks"
    return a + " " + b


def _units(doc: ParsedDoc) -> list[_Unit]:
    units: list[_Unit] = []
    section: str | None = None
    seen_heading = False
    intro = False
    pending: _Unit | None = None  # a paragraph that did not end its sentence (page break or figure in between)
    stop = False
    for page in doc.pages:
        if stop:
            break
        heads = sorted(page.headings)
        offset = 0
        for para in re.split(r"\n\s*\n", page.text):
            start = page.text.find(para, offset)
            offset = start + len(para)
            for h_off, h_text in heads:
                if h_off <= start:
                    section, seen_heading = h_text, True
            para = para.strip()
            if not para:
                continue
            if section and _STOP_SECTIONS.match(section):
                stop = True
                break
            intro = bool(section and re.search(r"introduction", section, re.I))
            if any(h_text == para for _, h_text in heads) or not seen_heading and page.number == 1:
                continue  # the heading itself; title/authors/affiliations before the first heading
            if _CAPTION.match(para):
                continue
            para = _cut_footnote(para)
            m = _BULLET.match(para)
            if pending is not None and (para[:1].islower() or para[:1].isdigit() and not _is_debris(para)) and not m:
                pending.pages.append((len(pending.text) + 1, page.number))
                pending.text = _join(pending.text, para)
                if _ENDS_SENTENCE.search(pending.text):
                    pending = None
                continue
            if _is_debris(para) or (len(para.split()) < 12 and not _ENDS_SENTENCE.search(para) and not m):
                continue  # figure labels and run-in fragments
            if pending is not None and _STARTS_SENTENCE.match(para):
                pending = None  # its continuation never came; its last sentence stays incomplete and is dropped
            unit = _Unit(text=_BULLET.sub("", para) if m else para, pages=[(0, page.number)], section=section,
                         bullet=bool(m), in_intro=intro)
            units.append(unit)
            if not _ENDS_SENTENCE.search(unit.text):
                pending = unit
    return units


def _split(text: str) -> list[tuple[int, int]]:
    try:
        from claimscope.retrieve.passages import split_sentences
    except ImportError:  # pragma: no cover - retrieve not installed
        return [(m.start(), m.end()) for m in re.finditer(r"[^.!?]+[.!?]+", text)]
    return split_sentences(text)


def doc_sentences(doc: ParsedDoc) -> list[Sentence]:
    """Every sentence of the paper body (no references), whole, with its page and section."""
    out: list[Sentence] = []
    for u in _units(doc):
        for s, e in _split(u.text):
            out.append(Sentence(u.text[s:e], u.page_at(s), u.section, u.bullet, u.in_intro))
    return out


def is_whole_sentence(text: str, *, bullet: bool = False) -> bool:
    if not _STARTS_SENTENCE.match(text) or _GLUED_HYPHEN.search(text):
        return False
    if text.count("(") != text.count(")"):
        return False
    return bool(_ENDS_SENTENCE.search(text)) or (bullet and len(text.split()) >= 6)


def checkworthiness(s: Sentence) -> float:
    from claimscope.verify.numbers import extract_quantities

    text = s.text
    score = 0.0
    qs = extract_quantities(text)
    if qs:
        score += 1.5 + 0.5 * min(2, sum(1 for q in qs if q.unit or q.noun))
    if _COMPARISON.search(text):
        score += 1.5
    if _CONTRIBUTION.search(text):
        score += 1.5
    if s.bullet and s.in_intro:
        score += 2.5
    elif s.bullet:
        score += 0.5
    for rx, w in _SECTION_WEIGHT:
        if s.section and rx.search(s.section):
            score += w
            break
    if s.section and _APPENDIX.search(s.section):
        score -= 1.0
    score -= 0.5 * min(3, len(re.findall(r"et al\.|\(\w[^()]*\d{4}\)", text)))
    if _HEDGE.search(text):
        score -= 1.0
    if text.rstrip().endswith("?"):
        score -= 2.0
    n = len(text.split())
    if n < 8:
        score -= 1.0
    elif n > 60:
        score -= 0.5
    return score


def _read(path: Path) -> ParsedDoc:
    if not path.exists():
        raise PaperNotFound(str(path), "no such file")
    if path.suffix.lower() == ".pdf":
        from claimscope.retrieve.pdf import parse_pdf

        return parse_pdf(path)
    from claimscope.retrieve.text import parse_text

    return parse_text(path)


def paper_ref_for(path: Path) -> PaperRef:
    """`2005.13013v1.pdf` -> PaperRef(arxiv_id=2005.13013, version=1); other names -> a local paper."""
    from claimscope.retrieve.local import parse_filename

    lf = parse_filename(path)
    if lf is not None:
        return PaperRef(arxiv_id=lf.arxiv_id, version=lf.version)
    return PaperRef(local_name=path.stem)


def extract_claims(doc: ParsedDoc | Path, paper: PaperRef, *, top_n: int = 30) -> list[Claim]:
    """The `top_n` most check-worthy whole sentences of a paper, best first, as claims citing `paper`."""
    if isinstance(doc, (str, Path)):
        doc = _read(Path(doc))
    best: dict[str, tuple[float, Sentence]] = {}
    for s in doc_sentences(doc):
        if not is_whole_sentence(s.text, bullet=s.bullet):
            continue
        key = normalize(s.text)
        score = checkworthiness(s)
        if score <= 0:
            continue
        if key not in best or best[key][0] < score:
            best[key] = (score, s)
    ranked = sorted(best.values(), key=lambda x: -x[0])[:top_n]
    logger.info("%s: %d check-worthy sentences, kept %d", paper.key, len(best), len(ranked))
    claims = []
    for _score, s in ranked:
        where = f"{paper.key} p.{s.page}" + (f" §{s.section}" if s.section else "")
        claims.append(Claim(text=s.text, source=where, cited=[paper]))
    return claims


# ---------------------------------------------------------------------------------------------------------------
# truncated claims

# Share of the cut claim's words found, in order and in runs of 2+ words, in the sentence. Measured on the example
# report against 2005.13013v1: the reworded "three-phase approach" sentence scores 0.90; v2-only sentences that share
# only their opening with a v1 sentence score 0.75 and below.
FULL_SENTENCE_MIN_COVERAGE = 0.8


def prefix_coverage(prefix_words: list[str], sentence_words: list[str]) -> float:
    """Fraction of `prefix_words` matched in order by `sentence_words` (difflib blocks of at least two words)."""
    if not prefix_words:
        return 0.0
    sm = difflib.SequenceMatcher(None, prefix_words, sentence_words, autojunk=False)
    return sum(b.size for b in sm.get_matching_blocks() if b.size >= 2) / len(prefix_words)


def find_full_sentence(
    truncated_claim: str,
    docs: list[tuple[PaperRef, ParsedDoc]],
    *,
    min_coverage: float = FULL_SENTENCE_MIN_COVERAGE,
) -> tuple[str, PaperRef, int] | None:
    """The complete sentence (text, paper, page) that a cut-off claim was taken from, or None when none is close.

    An exact prefix match (the last, possibly cut word matching the start of the sentence's next word) wins; otherwise
    the sentence covering most of the claim's words in order (`prefix_coverage` >= `min_coverage`) is returned. A
    sentence shorter than the cut claim is never its full form.
    """
    words = normalize(truncated_claim).split()
    if len(words) < 4:
        return None
    head, partial = words[:-1], words[-1]
    head_str = " ".join(head)
    best: tuple[float, str, PaperRef, int] | None = None
    for ref, doc in docs:
        for s in doc_sentences(doc):
            sw = normalize(s.text).split()
            joined = " ".join(sw)
            if joined.startswith(head_str) and len(sw) > len(head) and sw[len(head)].startswith(partial):
                score = 2.0
            else:
                if len(sw) < len(head) or not set(head[:6]) & set(sw[: len(words) + 6]):
                    continue
                score = prefix_coverage(head, sw)
            if score >= min_coverage and (best is None or score > best[0]):
                best = (score, s.text, ref, s.page)
    if best is None:
        return None
    logger.debug("full sentence for %r: %s p.%d (score %.2f)", truncated_claim[:40], best[2].key, best[3], best[0])
    return best[1], best[2], best[3]
