"""Numeric and count consistency between a claim and evidence passages.

`extract_quantities` finds the numbers a sentence states (with unit, sign, direction and the noun they count or
measure); `compare_quantities` aligns each claim quantity with the evidence quantity that measures the same thing
(head noun, modifiers, unit, nearby words) and says whether the values agree; `check_numbers` wraps it into the
`NumberCheck` stored in a verdict's `checks`.

Numbers that are not claims about quantities are skipped: citation years, table/figure/section numbers, footnote
markers glued to words, arXiv ids, identifiers such as XLM-100 or V100.
"""

from __future__ import annotations

import logging
import math
import re
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field

from claimscope.types import NumberCheck

logger = logging.getLogger(__name__)

Kind = Literal["number", "count", "delta", "range", "pair", "change", "multiple", "percent", "points", "size"]
Direction = Literal["increase", "decrease"]
Qualifier = Literal["exact", "approx", "at_least", "at_most"]


class Quantity(BaseModel):
    """One stated quantity: value (and a second value for ranges, F1/EM pairs and from→to changes)."""

    value: float
    high: float | None = Field(None, description="range upper end, second value of a pair, or a change's end")
    kind: Kind = "number"
    unit: str | None = Field(None, description="normalised unit: %, points, x, bytes")
    text: str = Field(description="the number as written, with its unit")
    start: int
    end: int
    decimals: int = Field(0, description="digits after the decimal point as written (for rounding tolerance)")
    direction: Direction | None = None
    qualifier: Qualifier = "exact"
    noun: str | None = Field(None, description="head noun (stemmed) of what is counted or measured")
    modifiers: list[str] = Field(default_factory=list, description="stemmed modifiers of the head noun")
    context: list[str] = Field(default_factory=list, description="stemmed content words around the number")
    phrase: str = Field("", description="the number with its noun phrase, as written")
    around: list[str] = Field(default_factory=list, description="the words right before and after it, lower-cased")

    def describe(self) -> str:
        return self.phrase or self.text


class QuantityMatch(BaseModel):
    """How one claim quantity fared against the evidence."""

    claim: Quantity
    evidence: Quantity | None = None
    evidence_index: int | None = Field(None, description="0-based index into the evidence list")
    score: float = 0.0
    status: Literal["match", "mismatch", "unaligned"]
    detail: str = ""


class NumberComparison(BaseModel):
    status: Literal["consistent", "mismatch", "not_found", "not_applicable"]
    details: list[str] = Field(default_factory=list)
    matches: list[QuantityMatch] = Field(default_factory=list)

    def to_check(self) -> NumberCheck:
        return NumberCheck(status=self.status, details=self.details)


# ---------------------------------------------------------------------------------------------------------------
# extraction

_ONES = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_ONES_ALT = "|".join(sorted(_ONES, key=len, reverse=True))
_TENS_ALT = "|".join(_TENS)
_WORD_NUM = re.compile(
    rf"\b(?:(?P<dozen>an?\s+dozen)|(?P<a>a|one)\s+(?P<ascale>hundred|thousand|million|billion)"
    rf"|(?:(?P<tens>{_TENS_ALT})(?:[-\s](?P<tones>one|two|three|four|five|six|seven|eight|nine))?|(?P<ones>{_ONES_ALT}))"
    rf"(?:[-\s](?P<scale>hundred|thousand|million|billion))?)\b",
    re.IGNORECASE,
)
_DIGIT_NUM = re.compile(
    r"(?<![\w.\-/:#@$€£])(?P<sign>[+\-−]\s?)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:[eE](?P<exp>[+\-−]?\d+))?"
)
_UNIT = re.compile(
    r"\s?(?P<unit>%|percent\b|percentage\s+points?\b|pp\b|p\.p\.|points?\b|pts?\b|[x×](?![A-Za-z0-9])"
    r"|[KMGT]i?B\b|(?:kilo|mega|giga|tera)bytes?\b)",
)
_SCALE_AFTER = re.compile(
    r"\s?(?P<scale>(?i:million|billion|thousand|trillion)\b|[MBK](?![A-Za-z])|[mk](?=[-\s]|$))"
)
_UNIT_NORM = {"%": "%", "percent": "%", "pp": "points", "p.p.": "points", "x": "x", "×": "x"}
_BYTES = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "kilo": 1e3, "mega": 1e6, "giga": 1e9, "tera": 1e12}
_SCALE_NORM = {"million": 1e6, "billion": 1e9, "thousand": 1e3, "trillion": 1e12, "m": 1e6, "b": 1e9, "k": 1e3}

_REFERENCE_WORDS = {
    "table", "tables", "tab", "figure", "figures", "fig", "section", "sections", "sec", "appendix", "eq", "equation",
    "equations", "chapter", "footnote", "line", "lines", "page", "pages", "pp", "algorithm", "step", "theorem", "lemma",
    "definition", "version", "v", "phase", "row", "column", "col", "no", "vol", "volume", "issue", "part", "stage",
}  # fmt: skip
_SKIP_SPANS = [
    re.compile(r"(?:arXiv:\s?)?\b\d{4}\.\d{4,5}(?:v\d+)?\b", re.IGNORECASE),  # arXiv ids
    re.compile(r"https?://\S+|www\.\S+|\S+@\S+"),  # urls, emails
    re.compile(r"§\s?\d+(?:\.\d+)*"),
    re.compile(r"\b\d+(?:st|nd|rd|th)\b"),  # ordinals
]
_MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}  # fmt: skip
_STOP = {
    "a", "an", "the", "of", "on", "in", "for", "from", "to", "over", "with", "by", "and", "or", "than", "across", "at",
    "as", "that", "which", "who", "we", "our", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this",
    "these", "those", "while", "but", "relative", "compared", "respectively", "into", "per", "each", "both", "all",
    "also", "only", "not", "no", "has", "have", "had", "there", "their", "they", "when", "where", "between", "such",
    "using", "use", "used", "via", "after", "before", "up", "out", "about", "around", "nearly", "almost", "least",
    "most", "more", "less", "fewer", "under", "among", "against", "within", "without", "then", "so", "can", "could",
    "may", "might", "will", "would", "should", "must", "do", "does", "did", "if", "set", "total", "roughly",
    "approximately", "further", "another", "same",
    "i", "ii", "iii", "iv", "e", "g", "ie", "eg", "et", "al", "upon", "yields", "yield", "obtain", "obtains",
    "achieve", "achieves", "attaining", "setting", "show", "shows", "see", "sees", "span", "spans", "leads", "lead",
}  # fmt: skip
_GENERIC_MOD_WORDS = {
    "different", "distinct", "various", "several", "additional", "other", "separate", "new", "total", "larg", "small",
    "signific", "substanti", "consist", "moder", "dramat", "overal", "strong", "slight", "absolut", "respect",
}  # fmt: skip
_VERBISH_WORDS = {
    "perform", "show", "achiev", "lead", "yield", "outperform", "improv", "obtain", "reach", "give", "see"
}
_MODALS = {"might", "can", "could", "would", "should", "may", "must", "will", "of", "or", "another", "another's"}
_INCREASE = {
    "improv", "increas", "gain", "outperform", "boost", "rise", "rose", "risen", "higher", "better", "rais", "lift",
    "surpass", "exceed", "benefit", "grow", "grew", "up", "ahead",
}  # fmt: skip
_DECREASE = {
    "decreas", "drop", "reduc", "declin", "fall", "fell", "lower", "wors", "degrad", "hurt", "loss", "lose", "lost",
    "lag", "underperform", "down", "behind", "shrink", "shrank", "cut",
}  # fmt: skip
_APPROX = ("about", "around", "approximately", "roughly", "nearly", "almost", "~", "≈", "circa", "some")
_AT_LEAST = ("at least", "more than", "over", "above", "greater than", "upwards of", "in excess of", ">", "≥")
_AT_MOST = ("at most", "less than", "fewer than", "under", "below", "up to", "<", "≤")
_QUALIFIER_WORDS = {
    "at", "least", "more", "than", "about", "around", "nearly", "almost", "up", "over", "only", "roughly",
    "approximately", "just", "under", "below", "above", "fewer", "less",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9']*")


@lru_cache(maxsize=1)
def _stemmer():  # noqa: ANN202
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=4096)
def stem(word: str) -> str:
    return _stemmer().stemWord(word.lower())


_GENERIC_MODS = {stem(w) for w in _GENERIC_MOD_WORDS} | _GENERIC_MOD_WORDS
_VERBISH = {stem(w) for w in _VERBISH_WORDS}


class _Tok:
    """A raw number found in the text, before merging into ranges/pairs."""

    __slots__ = ("start", "end", "value", "sign", "decimals", "unit", "word", "numtext_end")

    def __init__(self, start: int, end: int, value: float, sign: int, decimals: int, word: bool) -> None:
        self.start, self.end, self.value, self.sign, self.decimals, self.word = start, end, value, sign, decimals, word
        self.unit: str | None = None
        self.numtext_end = end


def _word_value(m: re.Match[str]) -> float:
    if m.group("dozen"):
        return 12
    if m.group("ascale"):
        return _SCALES[m.group("ascale").lower()]
    v: float
    if m.group("tens"):
        v = _TENS[m.group("tens").lower()] + (_ONES[m.group("tones").lower()] if m.group("tones") else 0)
    else:
        v = _ONES[m.group("ones").lower()]
    if m.group("scale"):
        v *= _SCALES[m.group("scale").lower()]
    return float(v)


def _prev_word(text: str, pos: int) -> str:
    m = re.search(r"([A-Za-z]+)\.?\s*\(?\s*$", text[max(0, pos - 30) : pos])
    return m.group(1).lower() if m else ""


def _next_word(text: str, pos: int) -> str:
    m = re.match(r"\s*([A-Za-z][A-Za-z']*)", text[pos : pos + 40])
    return m.group(1) if m else ""


def _masked(text: str) -> list[tuple[int, int]]:
    spans = [(m.start(), m.end()) for rx in _SKIP_SPANS for m in rx.finditer(text)]
    # a year-like number inside a citation parenthesis: "(Conneau et al., 2020)", "(Hu et al., 2020; ...)"
    for m in re.finditer(r"\([^()]*?(?:et al\.?|[A-Z][a-z]+)[^()]*?\b(?:19|20)\d{2}[a-z]?[^()]*\)", text):
        spans.append((m.start(), m.end()))
    return spans


def _in_spans(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= pos < b for a, b in spans)


def _raw_tokens(text: str) -> list[_Tok]:
    masked = _masked(text)
    toks: list[_Tok] = []
    for m in _DIGIT_NUM.finditer(text):
        s = m.start("num")
        if _in_spans(s, masked):
            continue
        num = m.group("num")
        after = text[m.end() : m.end() + 3]
        value = float(num.replace(",", ""))
        if m.group("exp"):
            value *= 10 ** int(m.group("exp").replace("−", "-"))
        decimals = len(num.split(".")[1]) if "." in num else 0
        sign = 0
        if m.group("sign"):
            sign = 1 if m.group("sign").strip() == "+" else -1
        tok = _Tok(m.start(), m.end(), value, sign, decimals, word=False)
        # unit / scale glued or spaced after the number
        rest = text[m.end() :]
        um = _UNIT.match(rest)
        sm = _SCALE_AFTER.match(rest) if not um else None
        if um:
            u = um.group("unit")
            ul = u.lower().replace(" ", "")
            if ul.startswith("percentagepoint") or ul.startswith("point") or ul.startswith("pt"):
                tok.unit = "points"
            elif ul.endswith("b") or ul.endswith("byte") or ul.endswith("bytes"):
                prefix = ul[:-1] if ul.endswith("b") else re.sub(r"bytes?$", "", ul)
                tok.unit = "bytes"
                tok.value *= _BYTES.get(prefix.rstrip("i"), 1)
            else:
                tok.unit = _UNIT_NORM.get(ul, ul)
            tok.end = m.end() + um.end()
        elif sm:
            tok.value *= _SCALE_NORM[sm.group("scale").lower()]
            tok.end = m.end() + sm.end()
        elif re.match(r"[A-Za-z]", after):
            continue  # footnote marker or identifier glued to a word ("5XLM-R", "2019a")
        if not m.group("sign") and s > 0 and text[s - 1] in "-−" and s > 1 and text[s - 2].isalpha():
            continue  # identifier like XLM-100
        if _prev_word(text, m.start()) in _REFERENCE_WORDS and not tok.unit:
            continue  # Table 2, Section 2.1, pages 12–20
        is_year = (
            not tok.unit
            and not sign
            and decimals == 0
            and "," not in num
            and 1900 <= value <= 2099
            and len(num) == 4
        )
        if is_year:
            nxt = _next_word(text, tok.end)
            if _prev_word(text, m.start()) in _MONTHS or not nxt or not nxt[0].islower() or nxt.lower() in _STOP:
                continue
        toks.append(tok)
    for m in _WORD_NUM.finditer(text):
        if _in_spans(m.start(), masked):
            continue
        if m.group("ones") and m.group("ones").lower() == "one" and not m.group("scale"):
            nxt = _next_word(text, m.end())
            if not nxt or nxt.lower() in _STOP or nxt.lower() in _MODALS or text[m.end() : m.end() + 1] == "-":
                continue  # "one might", "one of", "one or more", "one-shot"
        if m.group("ones") and m.group("ones").lower() == "zero" and _next_word(text, m.end()).lower() == "shot":
            continue
        if text[m.end() : m.end() + 6].lower().startswith("-shot"):
            continue
        tok = _Tok(m.start(), m.end(), _word_value(m), 0, 0, word=True)
        um = _UNIT.match(text[m.end() :])
        if um and um.group("unit").lower().endswith(("bytes", "byte")):
            tok.unit = "bytes"
            tok.value *= _BYTES.get(re.sub(r"bytes?$", "", um.group("unit").lower()), 1)
            tok.end = m.end() + um.end()
        elif um and um.group("unit").lower().startswith(("point", "percent")):
            tok.unit = "points" if um.group("unit").lower().startswith("point") else "%"
            tok.end = m.end() + um.end()
        toks.append(tok)
    toks.sort(key=lambda t: t.start)
    return toks


def _words_before(text: str, pos: int, n: int = 8) -> list[tuple[str, int, int]]:
    seg_start = max(0, pos - 120)
    seg = text[seg_start:pos]
    # stop at a clause boundary
    cut = max(seg.rfind(ch) for ch in ".;:()!?\n")
    if cut >= 0 and not re.match(r"\d", seg[cut + 1 : cut + 2] or "x"):
        seg_start += cut + 1
        seg = text[seg_start:pos]
    words = [(w.group(0), seg_start + w.start(), seg_start + w.end()) for w in _WORD.finditer(seg)]
    return words[-n:]


def _words_after(text: str, pos: int, n: int = 8) -> list[tuple[str, int, int, str]]:
    """Words after pos with the text between the previous token and each word (to detect punctuation/numbers)."""
    out = []
    last = pos
    for w in re.finditer(r"[A-Za-z][A-Za-z0-9']*(?:-[A-Za-z][A-Za-z0-9']*)*", text[pos : pos + 160]):
        a, b = pos + w.start(), pos + w.end()
        out.append((w.group(0), a, b, text[last:a]))
        last = b
        if len(out) >= n:
            break
    return out


def _split_stems(word: str) -> list[str]:
    return [stem(p) for p in word.split("-") if p and p.lower() not in _STOP]


_NOUN_SYNONYMS = {"gain": "improv", "boost": "improv", "increas": "improv", "declin": "decreas", "drop": "decreas",
                  "reduct": "decreas", "reduc": "decreas", "lang": "languag"}


def _noun(word: str) -> str:
    s = stem(word.split("-")[-1])
    return _NOUN_SYNONYMS.get(s, s)


def _direction_of(stems: list[str]) -> Direction | None:
    for s in stems:
        if s in _INCREASE or any(s.startswith(x) for x in ("improv", "increas", "outperform", "boost")):
            return "increase"
        if s in _DECREASE or any(s.startswith(x) for x in ("decreas", "reduc", "declin", "degrad", "underperform")):
            return "decrease"
    return None


def _attach_noun(text: str, q: Quantity) -> None:
    """Find the noun phrase the number counts/measures: after it ("9 target tasks") or before it ("improvement of")."""
    after = _words_after(text, q.end)
    phrase: list[tuple[str, int, int]] = []
    for w, a, b, gap in after:
        if gap.strip() and not re.fullmatch(r"[\s\-]*", gap):
            break  # punctuation or another number between
        if w.lower() in _STOP or (len(phrase) == 0 and w[0].isupper() and w.lower() not in _TENS and len(w) > 1
                                  and not w.isupper()):
            break
        phrase.append((w, a, b))
        if len(phrase) >= 5:
            break
    # a noun phrase ends at its first plural noun ("9 tasks performs best" -> "9 tasks"); verbs end it too
    for i, (w, _a, _b) in enumerate(phrase):
        lw = w.lower()
        if i > 0 and (stem(lw) in _VERBISH or (lw.endswith(("ing", "ed")) and not lw.endswith(("ling", "ding")))):
            phrase = phrase[:i]
            break
        if lw.endswith("s") and not lw.endswith(("ss", "us", "is")) and len(lw) > 3:
            phrase = phrase[: i + 1]
            break
    head_words = [w for w, _, _ in phrase]
    if phrase:
        open_ended = not text[phrase[-1][2] :].strip()  # a cut-off text: "nine different English intermediate"
        q.noun = None if open_ended else _noun(head_words[-1])
        last = len(head_words) if open_ended else -1
        q.modifiers = [s for w in head_words[:last] for s in _split_stems(w) if s not in _GENERIC_MODS]
        q.phrase = text[q.start : phrase[-1][2]]
    before = _words_before(text, q.start)
    pre_stems = [stem(w) for w, _, _ in before]
    # "improvement of 6.1", "improving by 8.7", "score of 74.2", "accuracy decreases from 71.8% to 67.7%"
    lowered = [w.lower() for w, _, _ in before]
    head_i = None
    for i in range(len(lowered) - 1, -1, -1):
        if lowered[i] in ("of", "by", "from", "to", "is", "was", "are", "were", "reaches", "reach"):
            if i > 0 and lowered[i - 1] not in _STOP:
                head_i = i - 1
            elif i > 1 and lowered[i - 1] in ("a", "an", "the") and False:
                head_i = None
            # "improves over XLM-R by 6.1": look further back for a direction verb
            if lowered[i] == "by":
                for j in range(i - 1, max(-1, i - 7), -1):
                    if _direction_of([pre_stems[j]]):
                        head_i = j
                        # "improves XNLI average accuracy by 14.6%": the object names what is measured
                        obj = []
                        for k in range(j + 1, i):
                            if lowered[k] in _STOP:
                                break
                            obj.append(k)
                        if obj and len(obj) == i - j - 1:
                            q.direction = _direction_of([pre_stems[j]])
                            head_i = obj[-1]
                        break
            break
        if lowered[i] not in _QUALIFIER_WORDS:
            break
    if head_i is not None and (not phrase or q.unit in ("points", "%")):
        head = before[head_i][0]
        mods: list[str] = []
        lh = head.lower()
        head_is_verb = lh.endswith(("ing", "ed")) or (
            lh.endswith("s")
            and not lh.endswith(("ments", "ions", "ances", "ences", "ss"))
            and lh not in ("gains", "drops", "losses", "boosts")
            and _direction_of([stem(head)]) is not None
        )
        if q.kind == "change" and head_is_verb and head_i > 0 and lowered[head_i - 1] not in _STOP:
            head_i -= 1  # "accuracy decreases from 71.8% to 67.7%": the noun is accuracy
            head, head_is_verb = before[head_i][0], False
        nxt_start = before[head_i][1]
        for w, _a, b in reversed(before[max(0, head_i - 3) : head_i]):
            if head_is_verb or w.lower() in _STOP or re.search(r"[,;]", text[b:nxt_start]):
                break
            nxt_start = _a
            mods.extend(s for s in _split_stems(w) if s not in _GENERIC_MODS)
        if not phrase:
            q.noun = _noun(head)
            q.modifiers = mods
            q.phrase = text[before[max(0, head_i - len(mods))][1] : q.end] if mods else text[before[head_i][1] : q.end]
        else:  # "6.1 point improvement" already has a head; add the verb's modifiers
            q.modifiers = list(dict.fromkeys(q.modifiers + mods))
    # direction: explicit sign, or a direction word as head or right before the number
    if q.direction is None:
        if q.kind == "change" and q.high is not None:
            q.direction = "increase" if q.high > q.value else ("decrease" if q.high < q.value else None)
        else:
            near = ([q.noun] if q.noun else []) + pre_stems[-4:]
            q.direction = _direction_of(near)
    # qualifier
    tail = text[max(0, q.start - 25) : q.start].lower().rstrip()
    if tail.endswith(_AT_LEAST):
        q.qualifier = "at_least"
    elif tail.endswith(_AT_MOST):
        q.qualifier = "at_most"
    elif tail.endswith(_APPROX):
        q.qualifier = "approx"
    # context: content words in a window around the number
    window = text[max(0, q.start - 80) : min(len(text), q.end + 80)]
    q.context = sorted({s for w in _WORD.findall(window) if w.lower() not in _STOP for s in _split_stems(w)})
    q.around = [_prev_word(text, q.start), _next_word(text, q.end).lower()]
    if not q.phrase:
        q.phrase = q.text


def extract_quantities(text: str) -> list[Quantity]:
    """All stated quantities in `text`, left to right, each with its noun, unit, direction and context."""
    toks = _raw_tokens(text)
    out: list[Quantity] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        gap = text[t.end : nxt.start] if nxt else ""
        before = text[max(0, t.start - 9) : t.start].lower()
        kind: Kind = "count" if t.word else ("delta" if t.sign else "number")
        unit = t.unit or (nxt.unit if nxt and re.fullmatch(r"\s?[–—-]\s?|\s?/\s?|\s+to\s+|\s+and\s+", gap) else None)
        q = None
        if nxt and not t.sign and not nxt.sign and re.fullmatch(r"\s?[–—]\s?|-", gap):
            q = Quantity(value=t.value, high=nxt.value, kind="range", unit=unit, text=text[t.start : nxt.end],
                         start=t.start, end=nxt.end, decimals=max(t.decimals, nxt.decimals))
        elif nxt and re.fullmatch(r"\s?/\s?", gap):
            v1, v2 = t.value * (t.sign or 1), nxt.value * (nxt.sign or 1)
            q = Quantity(value=v1, high=v2, kind="pair", unit=unit, text=text[t.start : nxt.end], start=t.start,
                         end=nxt.end, decimals=max(t.decimals, nxt.decimals))
            if t.sign and nxt.sign and t.sign == nxt.sign:
                q.direction = "increase" if t.sign > 0 else "decrease"
        elif nxt and before.rstrip().endswith("between") and re.fullmatch(r"\s+and\s+", gap):
            q = Quantity(value=t.value, high=nxt.value, kind="range", unit=unit, text=text[t.start : nxt.end],
                         start=t.start, end=nxt.end, decimals=max(t.decimals, nxt.decimals))
        elif nxt and before.rstrip().endswith("from") and re.fullmatch(r"\s+to\s+", gap):
            q = Quantity(value=t.value, high=nxt.value, kind="change", unit=unit, text=text[t.start : nxt.end],
                         start=t.start, end=nxt.end, decimals=max(t.decimals, nxt.decimals))
        if q is not None:
            i += 2
        else:
            q = Quantity(value=t.value * (t.sign or 1), kind=kind, unit=t.unit, text=text[t.start : t.end],
                         start=t.start, end=t.end, decimals=t.decimals)
            if t.sign:
                q.direction = "increase" if t.sign > 0 else "decrease"
            if t.unit == "x":
                q.kind = "multiple"
            i += 1
        out.append(q)
    for q in out:
        _attach_noun(text, q)
    _share_list_nouns(text, out)
    return out


def _share_list_nouns(text: str, qs: list[Quantity]) -> None:
    """In "8.2, 7.5, and 7.0 points" or "5.9 and 25.5 point gains", earlier items take the last item's unit/noun."""
    for i in range(1, len(qs)):  # "improvements of 8.2, 7.5, and 7.0 point": the last takes the first's noun
        a, b = qs[i - 1], qs[i]
        if b.noun is None and a.noun and re.fullmatch(r"\s*(,|and|or|,\s*and|,\s*or)\s*", text[a.end : b.start]):
            b.noun, b.modifiers = a.noun, list(a.modifiers)
            if b.direction is None:
                b.direction = a.direction
    for i in range(len(qs) - 2, -1, -1):
        a, b = qs[i], qs[i + 1]
        gap = text[a.end : b.start]
        if re.fullmatch(r"\s*(,|and|or|,\s*and|,\s*or)\s*", gap):
            if a.unit is None:
                a.unit = b.unit
            if a.noun is None or a.phrase == a.text:
                a.noun, a.modifiers = b.noun, list(b.modifiers)
                a.phrase = a.text + (b.phrase[len(b.text) :] if b.phrase.startswith(b.text) else "")
            if a.direction is None:
                a.direction = b.direction


# ---------------------------------------------------------------------------------------------------------------
# comparison

_ALIGN_THRESHOLD = 2.0


def _units_compatible(a: str | None, b: str | None) -> bool | None:
    """True = same kind of unit, False = incompatible, None = one side has no unit."""
    if a is None or b is None:
        return None
    pct = {"%", "points"}
    return a == b or (a in pct and b in pct)


def align_score(c: Quantity, e: Quantity) -> float:
    """How sure we are that the two quantities measure the same thing (>= 2 counts as aligned)."""
    uc = _units_compatible(c.unit, e.unit)
    if uc is False and not ({c.unit, e.unit} & {"x"} and False):
        return -1.0
    score = 0.0
    if uc:
        score += 2.0 if c.unit == e.unit == "bytes" else 1.0  # a data size is specific; % and points are not
    if c.noun and e.noun:
        if c.noun == e.noun:
            score += 2.0
        elif c.noun in e.modifiers or e.noun in c.modifiers:
            score += 0.5
        else:
            return -1.0 if (c.kind == "count" or e.kind == "count" or not uc) else score
        cm, em = set(c.modifiers), set(e.modifiers)
        shared = cm & em
        score += 1.0 * len(shared)
        if cm and em and not shared:
            score -= 1.5
    elif c.noun or e.noun:
        # one side names a noun; it counts if it appears in the other's context
        noun = c.noun or e.noun
        other = e if c.noun else c
        if noun in other.context:
            score += 1.0
        # the other side's phrase was cut off before its noun: its words must be the noun's modifiers
        named = c if c.noun else e
        score += 1.5 * len(set(other.modifiers) & (set(named.modifiers) | {noun}))
    shared_ctx = (set(c.context) & set(e.context)) - {c.noun, e.noun}
    score += min(1.5, 0.25 * len(shared_ctx))
    if c.around == e.around and all(c.around):
        # the same words on both sides ("gains in 8 out of the 9"): the same phrase, even with no noun to go by
        score += 2.0
    return score


def _percent_scale(c: Quantity, e: Quantity) -> tuple[float, float]:
    """Percent vs fraction: 80.9% vs 0.809."""
    cv, ev = c.value, e.value
    if c.unit == "%" and e.unit is None and abs(ev) <= 1 and abs(cv) > 1:
        ev *= 100
    elif e.unit == "%" and c.unit is None and abs(cv) <= 1 and abs(ev) > 1:
        cv *= 100
    return cv, ev


def _close(a: float, b: float, decimals_a: int, decimals_b: int) -> bool:
    d = min(decimals_a, decimals_b)
    tol = 0.5 * 10 ** (-d) + 1e-9
    # the less precise one is a rounding of the more precise one
    return abs(a - b) <= tol if decimals_a != decimals_b else math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def values_agree(c: Quantity, e: Quantity) -> bool:
    cv, ev = _percent_scale(c, e)
    if c.kind in ("range", "change", "pair") and c.high is not None:
        if e.high is None:
            return c.kind == "range" and min(cv, c.high) <= ev <= max(cv, c.high)
        ok = _close(cv, ev, c.decimals, e.decimals) and _close(c.high, e.high, c.decimals, e.decimals)
        return ok and not (c.kind == "change" and e.kind == "change" and c.direction != e.direction)
    if e.kind == "range" and e.high is not None:
        return min(ev, e.high) <= cv <= max(ev, e.high)
    if e.kind == "pair" and e.high is not None:  # claim states one of F1/EM
        return _close(abs(cv), abs(ev), c.decimals, e.decimals) or _close(abs(cv), abs(e.high), c.decimals, e.decimals)
    a, b = cv, ev
    if c.direction and e.direction is None or e.direction and c.direction is None:
        a, b = abs(a), abs(b)  # "+6.1" vs "6.1 point improvement"
    if c.qualifier == "at_least":
        return b >= a - 1e-9
    if c.qualifier == "at_most":
        return b <= a + 1e-9
    if c.qualifier == "approx" or e.qualifier == "approx":
        return math.isclose(a, b, rel_tol=0.1)
    if e.qualifier == "at_least":
        return a >= b - 1e-9
    if e.qualifier == "at_most":
        return a <= b + 1e-9
    return _close(a, b, c.decimals, e.decimals)


def _directions_conflict(c: Quantity, e: Quantity) -> bool:
    return c.direction is not None and e.direction is not None and c.direction != e.direction


def compare_quantities(claim: str, evidence: list[str]) -> NumberComparison:
    """Align every quantity of the claim with the best evidence quantity measuring the same thing, and compare."""
    cqs = extract_quantities(claim)
    if not cqs:
        return NumberComparison(status="not_applicable")
    eqs = [(i, q) for i, passage in enumerate(evidence) for q in extract_quantities(passage)]
    matches: list[QuantityMatch] = []
    for cq in cqs:
        scored = sorted(
            ((align_score(cq, eq), i, eq) for i, eq in eqs),
            key=lambda x: -x[0],
        )
        aligned = [(s, i, eq) for s, i, eq in scored if s >= _ALIGN_THRESHOLD]
        if not aligned:
            matches.append(QuantityMatch(claim=cq, status="unaligned",
                                         detail=f"claim says {cq.describe()}; no evidence passage states it"))
            continue
        best = aligned[0][0]
        # an agreeing evidence quantity nearly as well aligned as the best one wins (e.g. repeated mentions)
        agree = [(s, i, eq) for s, i, eq in aligned
                 if s >= best - 0.75 and values_agree(cq, eq) and not _directions_conflict(cq, eq)]
        if agree:
            s, i, eq = agree[0]
            matches.append(QuantityMatch(claim=cq, evidence=eq, evidence_index=i, score=s, status="match",
                                         detail=f"claim says {cq.describe()}; evidence (passage {i + 1}) says "
                                                f"{eq.describe()}"))
        else:
            s, i, eq = aligned[0]
            swapped = cq.kind == eq.kind == "change" and cq.high is not None and eq.high is not None and _close(
                cq.value, eq.high, cq.decimals, eq.decimals) and _close(cq.high, eq.value, cq.decimals, eq.decimals)
            opposite = swapped or (values_agree(cq, eq) and _directions_conflict(cq, eq))
            why = "opposite direction" if opposite else "different value"
            matches.append(QuantityMatch(claim=cq, evidence=eq, evidence_index=i, score=s, status="mismatch",
                                         detail=f"claim says {cq.describe()}; evidence (passage {i + 1}) says "
                                                f"{eq.describe()} ({why})"))
    statuses = {m.status for m in matches}
    status: Literal["consistent", "mismatch", "not_found"]
    if "mismatch" in statuses:
        status = "mismatch"
    elif "match" in statuses:
        status = "consistent"
    else:
        status = "not_found"
    order = {"mismatch": 0, "match": 1, "unaligned": 2}
    details = [m.detail for m in sorted(matches, key=lambda m: order[m.status])]
    return NumberComparison(status=status, details=details, matches=matches)


def check_numbers(claim: str, evidence: list[str]) -> NumberCheck:
    """The numeric/count consistency of a claim against evidence passages, as stored in a verdict's checks."""
    return compare_quantities(claim, evidence).to_check()
