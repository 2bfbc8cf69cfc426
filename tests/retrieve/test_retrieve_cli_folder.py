"""`claimscope retrieve --papers DIR --out RUN` with no ids reads every paper in the folder, as `run` does for claims
that cite none, and names the files it did not read."""

from __future__ import annotations

import json
import shutil

from claimscope.cli import main

from .conftest import EXAMPLE_MD, EXAMPLE_PDF


def test_retrieve_a_whole_folder(tmp_path, capsys):
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    shutil.copy(EXAMPLE_MD, folder / "2005.13013v2.md")
    (folder / "stilts_notes.txt").write_text("Sentence encoders on STILTs. Intermediate training helps BERT on GLUE.\n")
    (folder / "minutes.docx").write_bytes(b"PK\x03\x04")
    shutil.copy(EXAMPLE_PDF.parent / "SOURCES.md", folder / "SOURCES.md")  # describes the folder: not a paper
    (folder / "README.txt").write_text("Papers for the review, named by arXiv id. Ask Ana before adding more.\n")
    out = tmp_path / "run"
    assert main(["-q", "retrieve", "--papers", str(folder), "--out", str(out), "--cache", str(tmp_path / "c")]) == 0
    papers = [json.loads(line) for line in (out / "papers.jsonl").read_text().splitlines()]
    assert sorted(p["path"] for p in papers) == ["papers/2005.13013v1/paper.pdf", "papers/2005.13013v2/paper.md",
                                                 "papers/stilts_notes/paper.txt"]
    passages = [json.loads(line) for line in (out / "passages.jsonl").read_text().splitlines()]
    assert {p["paper"] for p in passages} == {"2005.13013v1", "2005.13013v2", "stilts_notes"}
    printed = capsys.readouterr().out
    assert "minutes.docx" in printed and "not read" in printed
    assert "not read: SOURCES.md (it describes the folder" in printed and "not read: README.txt" in printed
