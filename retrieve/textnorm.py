"""Text clean-up shared by the PDF and text readers: ligatures, line joining, hyphenation, heading lines."""

from __future__ import annotations

import re
from collections.abc import Iterable

LIGATURES = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
}
_LIG_RE = re.compile("[" + "".join(LIGATURES) + "]")
_SPACES = re.compile(r"[ \t\u00a0\u2009\u202f]+")

# Prefixes that usually form real compounds when a line ends with them ("cross-\nlingual" stays "cross-lingual"),
# used only when the document itself does not tell us (see `Dehyphenator`).
COMPOUND_PREFIXES = frozenset(
    "cross zero few one two three four five six seven eight nine ten multi non self task state fine well high low "
    "large small long short end data domain language model word sentence token human machine semi".split()
)

# Section names that are headings when they stand alone on a line/block.
KNOWN_HEADINGS = frozenset(
    "abstract introduction background related work conclusion conclusions discussion results experiments "
    "experimental setup method methods methodology approach evaluation analysis limitations references "
    "bibliography acknowledgments acknowledgements appendix appendices future work ethics statement "
    "broader impact".split()
)
_KNOWN_HEADING_RE = re.compile(
    r"^(?:abstract|introduction|background|related work|conclusions?|discussion|results|experiments|"
    r"experimental setup|methods?|methodology|approach|evaluation|analysis|limitations|references|bibliography|"
    r"acknowledge?ments|appendix|appendices|future work|ethics statement|broader impact)$",
    re.IGNORECASE,
)
# "2 Approach", "2.1 Intermediate Tasks", "A.2 Details", "3. Results" (number then a capitalised title, no final period)
_NUMBERED_HEADING_RE = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2}){0,3}\.?|[A-H](?:\.\d{1,2}){1,3}\.?)\s+([A-Z][^\n]{0,80})$")
# "A Appendix" style letter headings only when followed by a known heading word
_LETTER_HEADING_RE = re.compile(r"^[A-H]\.?\s+(.{3,40})$")


def has_ligature(text: str) -> bool:
    return _LIG_RE.search(text) is not None


def fix_ligatures(text: str) -> str:
    return _LIG_RE.sub(lambda m: LIGATURES[m.group(0)], text)


def heading_text(line: str) -> str | None:
    """The heading if `line` (already joined into one line) looks like a section heading, else None."""
    line = line.strip()
    if not line or len(line) > 90:
        return None
    if _KNOWN_HEADING_RE.match(line.rstrip(":")):
        return line.rstrip(":")
    m = _NUMBERED_HEADING_RE.match(line)
    if m:
        title = m.group(1)
        if title.endswith((".", ",", ";")) or sum(c.isdigit() for c in title) > len(title) // 3:
            return None
        if len(title.split()) > 10:
            return None
        return line
    m = _LETTER_HEADING_RE.match(line)
    if m and _KNOWN_HEADING_RE.match(m.group(1)):
        return line
    return None


class Dehyphenator:
    """Decides how to join a line ending in '-' with the next line, using the document's own vocabulary.

    "perfor-\\nmance" -> "performance" (the joined word is seen elsewhere, or the prefix is not a word),
    "intermediate-\\ntask" -> "intermediate-task" (the hyphenated form is seen elsewhere, or the prefix is a
    compound-forming word), "XLM-\\nR" -> "XLM-R" (next line does not start lowercase).
    """

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._texts: list[str] = list(texts)
        self._vocab: set[str] | None = None

    def add(self, text: str) -> None:
        self._texts.append(text)
        self._vocab = None

    def _seen(self, form: str) -> bool:
        """Whether `form` (a word or a hyphenated pair) occurs in the document within one line.

        Built lazily with one regex pass; a word split by a line break ("perfor-\\nmance") is not in it."""
        if self._vocab is None:
            vocab: set[str] = set(_TOKEN_L.findall("\n".join(self._texts).lower()))
            for tok in [t for t in vocab if "-" in t]:
                parts = tok.split("-")
                vocab.update(parts)
                if len(parts) > 2:
                    vocab.update(f"{a}-{b}" for a, b in zip(parts, parts[1:], strict=False))
            self._vocab = vocab
        return form in self._vocab

    def keep_hyphen(self, prefix: str, suffix: str) -> bool:
        """True when `prefix-` at a line end followed by `suffix` is a real hyphen."""
        if not suffix or not suffix[0].islower():
            return True
        pre, suf = prefix.lower(), suffix.lower()
        if self._seen(f"{pre}-{suf}"):
            return True
        if self._seen(pre + suf):
            return False
        return pre in COMPOUND_PREFIXES


_TOKEN_L = re.compile(r"[a-z]+(?:-[a-z]+)*")
_TRAIL_WORD = re.compile(r"([A-Za-z]+)-$")
_LEAD_WORD = re.compile(r"^([A-Za-z]+)")


def join_lines(lines: list[str], dehyph: Dehyphenator) -> str:
    """Join the lines of one paragraph into one line: spaces between lines, hyphenation at line ends resolved."""
    parts: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if "  " in line or "\t" in line or "\u00a0" in line:
            line = _SPACES.sub(" ", line)
        if not parts:
            parts.append(line)
            continue
        prev = parts[-1]
        last = prev[-1]
        if last == "-" and not prev.endswith("--"):
            m = _TRAIL_WORD.search(prev[-64:])
            nxt = _LEAD_WORD.match(line) if m else None
            if m and nxt and not dehyph.keep_hyphen(m.group(1), nxt.group(1)):
                parts[-1] = prev[:-1]
            parts.append(line)
        elif last in "\u2013\u2014/":
            parts.append(line)
        else:
            parts.append(" ")
            parts.append(line)
    return "".join(parts)
