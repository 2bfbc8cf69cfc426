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
_WORD = re.compile(r"[A-Za-z]+")
_HYPHENATED = re.compile(r"[A-Za-z]+-[A-Za-z]+")

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
        self.words: set[str] = set()
        self.hyphenated: set[str] = set()
        for t in texts:
            self.add(t)

    def add(self, text: str) -> None:
        # words split by a line break are excluded by construction: the regexes do not cross '\n'
        self.hyphenated.update(w.lower() for w in _HYPHENATED.findall(text))
        self.words.update(w.lower() for w in _WORD.findall(text))

    def keep_hyphen(self, prefix: str, suffix: str) -> bool:
        """True when `prefix-` at a line end followed by `suffix` is a real hyphen."""
        if not suffix or not suffix[0].islower():
            return True
        pre, suf = prefix.lower(), suffix.lower()
        if f"{pre}-{suf}" in self.hyphenated:
            return True
        if pre + suf in self.words:
            return False
        return pre in COMPOUND_PREFIXES


_TRAIL_WORD = re.compile(r"([A-Za-z]+)-$")
_LEAD_WORD = re.compile(r"^([A-Za-z]+)")


def join_lines(lines: list[str], dehyph: Dehyphenator) -> str:
    """Join the lines of one paragraph into one line: spaces between lines, hyphenation at line ends resolved."""
    out = ""
    for raw in lines:
        line = _SPACES.sub(" ", raw).strip()
        if not line:
            continue
        if not out:
            out = line
            continue
        m = _TRAIL_WORD.search(out)
        if m and not out.endswith("--"):
            nxt = _LEAD_WORD.match(line)
            if nxt and not dehyph.keep_hyphen(m.group(1), nxt.group(1)):
                out = out[:-1] + line
            else:
                out = out + line
        elif out.endswith(("\u2013", "\u2014", "/")):
            out = out + line
        else:
            out = out + " " + line
    return out
