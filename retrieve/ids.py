"""Parse arXiv identifiers as users write them into PaperRefs."""

from __future__ import annotations

import re

from claimscope.types import PaperRef

_NEW = r"\d{4}\.\d{4,5}"
_OLD = r"[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}"
_ID_RE = re.compile(rf"^(?P<id>{_NEW}|{_OLD})(?:v(?P<v>\d+))?$")
_URL_RE = re.compile(
    r"^(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/(?P<rest>.+?)(?:\.pdf)?/?(?:[?#].*)?$",
    re.IGNORECASE,
)


def parse_arxiv_id(text: str) -> PaperRef:
    """`2005.13013`, `2005.13013v1`, `arXiv:2005.13013v2`, abs/pdf URLs, `hep-th/9901001v1` -> PaperRef.

    Raises ValueError for anything else, including ids with path tricks ("..", backslashes, extra slashes).
    """
    raw = text.strip()
    s = raw
    m = _URL_RE.match(s)
    if m:
        s = m.group("rest")
    elif s.lower().startswith("arxiv:"):
        s = s[len("arxiv:") :].strip()
    if ".." in s or "\\" in s or s.count("/") > 1 or "\x00" in s:
        raise ValueError(f"not an arXiv id: {raw!r}")
    m = _ID_RE.match(s)
    if not m:
        raise ValueError(f"not an arXiv id: {raw!r}")
    if re.fullmatch(_NEW, m.group("id")):
        yymm, digits = m.group("id").split(".")
        if not 1 <= int(yymm[2:]) <= 12 or yymm < "0704":
            raise ValueError(f"not an arXiv id: {raw!r} (the four digits before the dot are year and month, YYMM, "
                             "from 0704 on)")
        if len(digits) != (5 if yymm >= "1501" else 4):
            raise ValueError(f"not an arXiv id: {raw!r} (ids from 2015 on have 5 digits after the dot, "
                             "ids of 2007-2014 have 4)")
    version = int(m.group("v")) if m.group("v") else None
    if version == 0:
        raise ValueError(f"arXiv versions start at 1: {raw!r}")
    return PaperRef(arxiv_id=m.group("id"), version=version)


def versioned_id(ref: PaperRef) -> str:
    """`2005.13013v2` (or the bare id when unversioned); old-style ids keep their '/'."""
    if ref.arxiv_id is None:
        raise ValueError(f"{ref.key} is not an arXiv paper")
    return f"{ref.arxiv_id}v{ref.version}" if ref.version else ref.arxiv_id
