"""Bad inputs to `claimscope index build | search` give one clear error line naming the file or option."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from claimscope.cli import main

FIXTURES = Path(__file__).parents[2] / "fixtures" / "corpus"
SAMPLE = FIXTURES / "scifact_corpus_sample.jsonl"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("idx") / "idx"
    assert main(["-q", "index", "build", str(SAMPLE), "--out", str(out), "--embedder", "hash",
                 "--shard-size", "200"]) == 0
    return out


def _main(argv: list[str]) -> int:
    """main(), with argparse's exit for a bad option as its return code."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--shard-size", "0", "at least 1"), ("--shard-size", "-5", "at least 1"), ("--workers", "0", "at least 1"),
    ("--batch-size", "0", "at least 1"), ("--threads", "0", "at least 1"), ("--window", "0", "at least 1"),
    ("--window", "-2", "at least 1"), ("--exact-max", "-1", "at least 0"), ("--ann-memory", "abc", "not a number"),
    ("--ann-memory", "0", "above 0"), ("--shard-size", "5k", "not a whole number"),
])
def test_a_bad_build_option_is_refused_before_anything_is_written(tmp_path, capsys, option, value, says):
    out = tmp_path / "idx"
    rc = _main(["-q", "index", "build", str(SAMPLE), "--out", str(out), "--embedder", "hash", option, value])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and option in err and says in err and not out.exists()


def test_build_index_refuses_a_shard_size_below_one(tmp_path):
    from claimscope.errors import BadSettings
    from claimscope.types import EncoderSpec
    from claimscope.verify.corpus.build import build_index
    from claimscope.verify.corpus.engines import get_engine

    with pytest.raises(BadSettings, match="at least 1"):
        build_index(SAMPLE, tmp_path / "idx", engine=get_engine("local", workers=1, progress=False),
                    encoder=EncoderSpec(model="hash"), shard_size=0)
    assert not (tmp_path / "idx").exists()


def test_a_damaged_passage_shard_is_one_line_naming_the_shard(built, tmp_path, capsys):
    idx = tmp_path / "idx"
    shutil.copytree(built, idx)
    shard = idx / "passages" / "part-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:1000])
    capsys.readouterr()
    rc = main(["index", "search", str(idx), "white matter in preterm infants", "-k", "3", "--json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and str(shard) in err and "unreadable passage shard" in err


def _search(capsys, idx: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["-q", "index", "search", str(idx), *args])
    got = capsys.readouterr()
    return rc, got.out, " ".join(got.err.split())


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_is_refused(built, capsys, query):
    rc, out, err = _search(capsys, built, query, "--json")
    assert rc == 2 and not out and "empty query" in err


@pytest.mark.parametrize("k", ["0", "-3"])
def test_k_below_one_is_refused(built, capsys, k):
    capsys.readouterr()
    rc = _main(["-q", "index", "search", str(built), "white matter", "-k", k, "--json"])
    got = capsys.readouterr()
    assert rc == 2 and not got.out and "argument -k: must be at least 1" in got.err


def test_index_verify_batch_below_one_is_refused(built, tmp_path, capsys):
    rc = _main(["-q", "index", "verify", str(built), "--claims", str(FIXTURES / "scifact_claims_sample.jsonl"),
                "--out", str(tmp_path / "v.jsonl"), "--batch", "0"])
    assert rc == 2 and "argument --batch: must be at least 1" in capsys.readouterr().err


def test_a_paper_key_the_index_does_not_hold_is_named(built, capsys):
    rc, out, err = _search(capsys, built, "white matter", "--paper", "scifact:4983", "--paper", "scifact:99999999",
                           "--json")
    assert rc == 2 and not out and "scifact:99999999" in err and "not in the index" in err


def test_a_paper_given_without_version_takes_every_version_held(tmp_path, capsys):
    from claimscope.types import Passage

    rows = [Passage(paper=f"2005.13013v{v}", arxiv_id="2005.13013", version=v, page=1, start=0, end=40,
                    text=f"Intermediate-task training on {n} tasks helps XLM-R.")
            for v, n in ((1, "seven"), (2, "nine"))]
    rows.append(Passage(paper="2101.00001v1", arxiv_id="2101.00001", version=1, page=1, start=0, end=20,
                        text="Intermediate tasks are unrelated here."))
    corpus = tmp_path / "passages.jsonl"
    corpus.write_text("".join(p.model_dump_json() + "\n" for p in rows))
    idx = tmp_path / "idx"
    assert main(["-q", "index", "build", str(corpus), "--out", str(idx), "--embedder", "hash"]) == 0
    rc, out, _ = _search(capsys, idx, "intermediate tasks", "--paper", "2005.13013", "--json")
    assert rc == 0
    assert sorted(h["paper"] for h in json.loads(out)) == ["2005.13013v1", "2005.13013v2"]


def test_index_verify_with_an_empty_scifact_claims_file_is_an_error_like_other_formats(built, tmp_path, capsys):
    claims = tmp_path / "claims.jsonl"
    claims.write_text("\n")
    out = tmp_path / "verdicts.jsonl"
    capsys.readouterr()
    rc = main(["-q", "index", "verify", str(built), "--claims", str(claims), "--out", str(out), "--format", "scifact",
               "--stance-model", "lexical"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and f"{claims}: no claims found" in err and not out.exists()


def test_a_shard_with_no_indexable_word_is_built_and_searched(tmp_path, capsys):
    """A tail shard holding only stopwords ('It is.') has an empty BM25 vocabulary; bm25s cannot index that."""
    corpus = tmp_path / "corpus.jsonl"
    rows = SAMPLE.read_text().splitlines()[:2]
    first = sum(len(json.loads(r)["abstract"]) for r in rows)
    corpus.write_text("\n".join([*rows, json.dumps({"doc_id": 5, "title": "", "abstract": ["It is."]})]) + "\n")
    idx = tmp_path / "idx"
    assert main(["-q", "index", "build", str(corpus), "--out", str(idx), "--embedder", "hash",
                 "--shard-size", str(first)]) == 0
    rc, out, _ = _search(capsys, idx, "it is", "-k", "50", "--passages", "--json")
    assert rc == 0 and "It is." in {h["text"] for h in json.loads(out)}
    rc, out, _ = _search(capsys, idx, "white matter", "-k", "3", "--json")
    assert rc == 0 and len(json.loads(out)) == 3


def _run_index(folder: Path) -> Path:
    """The evidence index a run (or verify-scifact --index-dir) writes: its own manifest.json."""
    from claimscope.verify.index import EvidenceIndex
    from claimscope.verify.scifact import corpus_passages, read_corpus

    passages = corpus_passages(read_corpus(SAMPLE))[:5]
    EvidenceIndex.build(passages, model_name="bundled:all-MiniLM-L6-v2").save(folder)
    return folder


def test_search_on_a_runs_evidence_index_says_it_is_not_a_corpus_index(tmp_path, capsys):
    folder = _run_index(tmp_path / "run" / "index")
    rc, out, err = _search(capsys, folder, "white matter")
    assert rc == 2 and not out and f"{folder}" in err and "not a corpus index" in err and "validation" not in err


def test_build_into_another_commands_index_refuses_and_leaves_it_alone(tmp_path, capsys):
    folder = _run_index(tmp_path / "run" / "index")
    before = (folder / "manifest.json").read_bytes()
    capsys.readouterr()
    rc = main(["-q", "index", "build", str(SAMPLE), "--out", str(folder), "--embedder", "hash"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "not a corpus index" in err and "another --out" in err
    assert (folder / "manifest.json").read_bytes() == before and not (folder / "passages").exists()


def _build_error(tmp_path, capsys, corpus: Path) -> str:
    capsys.readouterr()
    rc = main(["-q", "index", "build", str(corpus), "--out", str(tmp_path / "idx"), "--embedder", "hash"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2
    return err


def test_a_corpus_row_missing_a_field_names_the_field(tmp_path, capsys):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:3]]
    del rows[1]["abstract"]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert f"{corpus}:2: not a SciFact corpus row: missing field 'abstract'" in _build_error(tmp_path, capsys, corpus)
    corpus.write_text("\n".join([json.dumps(rows[0]), "{oops"]) + "\n")
    assert f"{corpus}:2: not a SciFact corpus row: not JSON" in _build_error(tmp_path, capsys, corpus)


def test_a_passage_row_missing_a_field_names_the_field(tmp_path, capsys):
    from claimscope.types import Passage

    rows = [json.loads(Passage(paper="2005.13013v1", page=p, start=0, end=10, text=f"Page {p} text.").model_dump_json())
            for p in (1, 2, 3)]
    del rows[2]["text"]
    corpus = tmp_path / "passages.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert f"{corpus}:3: not a passage: missing field 'text'" in _build_error(tmp_path, capsys, corpus)
    corpus.write_text("\n".join([json.dumps(rows[0]), "{oops"]) + "\n")
    assert f"{corpus}:2: not a passage: not JSON" in _build_error(tmp_path, capsys, corpus)


def test_rebuilding_with_a_smaller_corpus_drops_the_shards_it_no_longer_has(built, tmp_path):
    from claimscope.verify.corpus.build import load_manifest

    idx = tmp_path / "idx"
    shutil.copytree(built, idx)  # 3 shards of 200
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(SAMPLE.read_text().splitlines()[:3]) + "\n")
    assert main(["-q", "index", "build", str(small), "--out", str(idx), "--embedder", "hash",
                 "--shard-size", "200"]) == 0
    m = load_manifest(idx)
    assert len(m.shards) == 1
    assert sorted(p.name for p in (idx / "embeddings").glob("part-*")) == ["part-00000.npy"]
    assert sorted(p.name for p in (idx / "bm25").iterdir()) == ["part-00000"]
    assert m.stats["index_bytes"] < load_manifest(built).stats["index_bytes"]


def test_the_build_summary_counts_the_files_of_a_folder_it_skipped(tmp_path, capsys):
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(Path(__file__).parents[3] / "examples" / "papers" / "2509.23657v1.txt", folder)
    (folder / "2101.00001v1.txt").write_text("\n")
    capsys.readouterr()
    assert main(["index", "build", str(folder), "--out", str(tmp_path / "idx"), "--embedder", "hash"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "from 1 paper in 1 shard" in said and "1 file skipped (unreadable or no text" in said
