"""`claimscope verify-scifact` on wrong inputs: one error line naming the file (and line) and the problem; claims the
run cannot check are said, not silently written as predicting nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimscope.cli import main

CORPUS = [
    {"doc_id": 11, "title": "Aspirin and stroke", "abstract": ["We studied 900 adults.",
                                                               "Aspirin reduces the risk of stroke in adults."]},
    {"doc_id": 13, "title": "Statins", "abstract": ["Statins lower cholesterol levels.", "Side effects were rare."]},
]
CLAIMS = [
    {"id": 1, "claim": "Aspirin reduces stroke risk in adults.", "cited_doc_ids": [11]},
    {"id": 2, "claim": "Statins lower cholesterol.", "cited_doc_ids": [13]},
]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(capsys, corpus: Path, claims: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["-q", "verify-scifact", "--corpus", str(corpus), "--claims", str(claims), "--out", str(out),
               "--stance-model", "lexical", *extra])
    got = capsys.readouterr()
    return rc, got.out, " ".join(got.err.split())


@pytest.mark.parametrize("which", ["corpus", "claims"])
def test_an_empty_file_is_an_error(tmp_path, capsys, which):
    files = {"corpus": _write(tmp_path / "corpus.jsonl", CORPUS), "claims": _write(tmp_path / "claims.jsonl", CLAIMS)}
    files[which].write_text("")
    out = tmp_path / "preds.jsonl"
    rc, stdout, err = _run(capsys, files["corpus"], files["claims"], out)
    assert rc == 2 and not stdout and f"{files[which]}: empty file" in err and not out.exists()


def test_the_corpus_given_as_claims_names_the_line_and_the_missing_field(tmp_path, capsys):
    corpus = _write(tmp_path / "corpus.jsonl", CORPUS)
    rc, stdout, err = _run(capsys, corpus, corpus, tmp_path / "preds.jsonl")
    assert rc == 2 and not stdout and "Traceback" not in err and f"{corpus}:1" in err and "missing field 'id'" in err


def test_the_claims_given_as_corpus_names_the_missing_field(tmp_path, capsys):
    claims = _write(tmp_path / "claims.jsonl", CLAIMS)
    rc, _, err = _run(capsys, claims, claims, tmp_path / "preds.jsonl")
    assert rc == 2 and f"{claims}:1" in err and "missing field 'doc_id'" in err


def test_oracle_claims_citing_docs_absent_from_the_corpus_are_said(tmp_path, capsys):
    corpus = _write(tmp_path / "corpus.jsonl", CORPUS)
    claims = _write(tmp_path / "claims.jsonl", [*CLAIMS, {"id": 3, "claim": "X.", "cited_doc_ids": [99]},
                                                {"id": 4, "claim": "Y."}])
    out = tmp_path / "preds.jsonl"
    rc, stdout, err = _run(capsys, corpus, claims, out, "--oracle-abstracts")
    assert rc == 0 and [json.loads(x)["id"] for x in out.read_text().splitlines()] == [1, 2, 3, 4]
    said = " ".join((stdout + err).split())
    assert "1 of 4 claims cite doc ids not in" in said and "[99]" in said
    assert "1 of 4 claims have no cited_doc_ids (claim 4)" in said


@pytest.mark.parametrize("option", ["--top-docs", "--top-k"])
def test_a_count_option_below_one_is_refused(tmp_path, capsys, option):
    corpus = _write(tmp_path / "corpus.jsonl", CORPUS)
    claims = _write(tmp_path / "claims.jsonl", CLAIMS)
    with pytest.raises(SystemExit) as e:
        main(["-q", "verify-scifact", "--corpus", str(corpus), "--claims", str(claims), "--out",
              str(tmp_path / "p.jsonl"), option, "0"])
    assert e.value.code == 2 and f"argument {option}: must be at least 1, got 0" in capsys.readouterr().err


def test_a_claim_given_twice_is_refused(tmp_path, capsys):
    corpus = _write(tmp_path / "corpus.jsonl", CORPUS)
    claims = _write(tmp_path / "claims.jsonl", [*CLAIMS, CLAIMS[0]])
    rc, stdout, err = _run(capsys, corpus, claims, tmp_path / "preds.jsonl")
    assert rc == 2 and not stdout and f"{claims}:3: claim 1 again (first on line 1)" in err
