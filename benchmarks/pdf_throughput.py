"""PDF -> passages throughput: parse_pdf + paper_passages vs raw PyMuPDF page.get_text(), same file, same run.

Usage: python benchmarks/pdf_throughput.py [PDF] [--repeat N]
Prints pages/s for both and their ratio (target >= 0.9 of raw).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pymupdf

from claimscope.retrieve.passages import paper_passages
from claimscope.retrieve.pdf import parse_pdf
from claimscope.types import Paper, PaperRef

DEFAULT_PDF = Path(__file__).resolve().parents[1] / "examples" / "papers" / "2005.13013v1.pdf"


def raw(path: Path) -> int:
    with pymupdf.open(path) as doc:
        for page in doc:
            page.get_text()
        return doc.page_count


def ours(path: Path, paper: Paper) -> int:
    doc = parse_pdf(path)
    paper_passages(paper, doc)
    return len(doc.pages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("pdf", nargs="?", type=Path, default=DEFAULT_PDF)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    ref = PaperRef(local_name=args.pdf.stem)
    paper = Paper(ref=ref, sha256="0" * 64, source="local", path=str(args.pdf), fmt="pdf")
    raw(args.pdf), ours(args.pdf, paper)  # warm up both
    t_raw: list[float] = []
    t_ours: list[float] = []
    pages = 0
    for _ in range(args.repeat):  # interleaved so both see the same machine load
        t0 = time.perf_counter()
        pages = raw(args.pdf)
        t_raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours(args.pdf, paper)
        t_ours.append(time.perf_counter() - t0)
    raw_pps = pages / statistics.median(t_raw)
    our_pps = pages / statistics.median(t_ours)
    n_passages = len(paper_passages(paper, parse_pdf(args.pdf)))
    print(f"file: {args.pdf} ({pages} pages, {n_passages} passages), {args.repeat} runs, median")
    print(f"raw page.get_text():            {raw_pps:8.1f} pages/s")
    print(f"parse_pdf + paper_passages:     {our_pps:8.1f} pages/s")
    print(f"ratio (ours / raw):             {our_pps / raw_pps:8.2f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
