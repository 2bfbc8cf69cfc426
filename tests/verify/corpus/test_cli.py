"""`claimscope index build | search | verify` end to end on real SciFact rows (tests/fixtures/corpus)."""

from __future__ import annotations

import json
from pathlib import Path

from claimscope.cli import main
from claimscope.verify.corpus.build import load_manifest
from claimscope.verify.corpus.search import ShardedEvidenceIndex

FIXTURES = Path(__file__).parents[2] / "fixtures" / "corpus"
SAMPLE = FIXTURES / "scifact_corpus_sample.jsonl"
CLAIMS = FIXTURES / "scifact_claims_sample.jsonl"


def _build(out: Path, *extra: str) -> int:
    return main(["-q", "index", "build", str(SAMPLE), "--out", str(out), "--embedder", "hash", "--shard-size", "200",
                 *extra])


def test_build_then_search_end_to_end(tmp_path, capsys):
    out = tmp_path / "idx"
    assert _build(out) == 0
    m = load_manifest(out)
    assert m.count == 523 and [s.rows for s in m.shards] == [200, 200, 123] and m.source_kind == "scifact"
    assert len(m.paper_shards) == 60 and m.ann.kind == "flat" and m.ann.recall_at_10 == 1.0
    assert m.encoder.dtype == "float16" and m.stats["index_bytes"] > 0 and m.stats["ingest_peak_rss_mb"] > 0
    capsys.readouterr()
    assert main(["index", "search", str(out), "diffusion tensor imaging of white matter in preterm infants",
                 "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and hits[0]["paper"] == "scifact:4983" and "white matter" in hits[0]["text"]
    assert main(["index", "search", str(out), "white matter", "--paper", "scifact:4983", "-k", "50", "--json"]) == 0
    only = json.loads(capsys.readouterr().out)
    assert {h["paper"] for h in only} == {"scifact:4983"} and len(only) == 14  # every sentence of that abstract


def test_rebuild_reuses_everything_and_repairs_a_damaged_shard(tmp_path):
    out = tmp_path / "idx"
    assert _build(out) == 0
    first = load_manifest(out)
    emb = sorted((out / "embeddings").glob("part-*.npy"))
    before = [p.read_bytes() for p in emb]
    assert _build(out) == 0
    again = load_manifest(out)
    assert again.stats["ingest_written"] == 0 and again.stats["embed_passages"] == 0
    assert again.corpus_hash == first.corpus_hash
    emb[1].write_bytes(emb[1].read_bytes()[:200])  # a damaged embedding shard
    (out / "passages" / "part-00002.parquet").unlink()  # and a lost passage shard
    assert _build(out) == 0
    repaired = load_manifest(out)
    assert repaired.stats["ingest_written"] == 123 and repaired.stats["embed_passages"] == 200 + 123
    assert [p.read_bytes() for p in emb] == before and repaired.corpus_hash == first.corpus_hash


def test_bad_corpus_row_is_a_one_line_error_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "corpus.jsonl"
    lines = SAMPLE.read_text().splitlines()[:3]
    bad.write_text("\n".join([lines[0], '{"doc_id": 7, "title": "x"}', lines[2]]) + "\n")
    rc = main(["-q", "index", "build", str(bad), "--out", str(tmp_path / "idx"), "--embedder", "hash"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and f"{bad}:2" in err and "SciFact corpus row" in err
    bad.write_text("not json\n")
    assert main(["-q", "index", "build", str(bad), "--out", str(tmp_path / "idx2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{bad}:1" in err and "not JSON" in err
    assert main(["index", "search", str(tmp_path / "nowhere"), "q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "manifest.json" in err and "build the index" in err


def test_verify_claims_against_the_index(tmp_path):
    out = tmp_path / "idx"
    assert _build(out) == 0
    verdicts_path = tmp_path / "verdicts.jsonl"
    assert main(["-q", "index", "verify", str(out), "--claims", str(CLAIMS), "--out", str(verdicts_path),
                 "--stance-model", "lexical", "--top-k", "4"]) == 0
    verdicts = [json.loads(line) for line in verdicts_path.read_text().splitlines()]
    claims = [json.loads(line) for line in CLAIMS.read_text().splitlines()]
    assert [v["claim_id"] for v in verdicts] == [str(c["id"]) for c in claims]
    for v, c in zip(verdicts, claims, strict=True):
        cited = {f"scifact:{d}" for d in c["cited_doc_ids"]}
        assert v["evidence"] and {e["paper"] for e in v["evidence"]} <= cited and v["scope"] == "cited"
        assert all(e["quote"] for e in v["evidence"])


def test_folder_of_papers_index_verifies_the_example_report_version_aware(tmp_path):
    root = Path(__file__).parents[3]
    out = tmp_path / "idx"
    assert main(["-q", "index", "build", str(root / "examples" / "papers"), "--out", str(out), "--embedder",
                 "hash"]) == 0
    m = load_manifest(out)
    assert m.source_kind == "folder" and {"2005.13013v1", "2005.13013v2", "2509.23657v1"} <= set(m.paper_shards)
    # titles as retrieve's readers find them (PDF metadata / first-page heading, a text file's first line)
    titles = ShardedEvidenceIndex(out).titles
    assert titles["2005.13013v1"] == "English Intermediate-Task Training Improves Zero-Shot Cross-Lingual Transfer Too"
    assert titles["2509.23657v1"].startswith("Beyond English-Centric Training: How Reinforcement Learning")
    verdicts_path = tmp_path / "verdicts.jsonl"
    assert main(["-q", "index", "verify", str(out), "--claims", str(root / "examples" / "assignee_report.txt"),
                 "--out", str(verdicts_path), "--stance-model", "lexical"]) == 0
    verdicts = [json.loads(line) for line in verdicts_path.read_text().splitlines()]
    assert len(verdicts) == 9 and all(v["scope"] == "cited" for v in verdicts)
    assert all({e["paper"] for e in v["evidence"]} <= {"2005.13013v1", "2005.13013v2"} for v in verdicts)
    # the v1 / v2 disagreement (seven vs nine intermediate tasks) is found through the corpus index too
    assert any("seven different intermediate tasks" in w for v in verdicts for w in v["checks"]["warnings"])
