"""Bad inputs to `claimscope index build | search` give one clear error line naming the file or option."""

from __future__ import annotations

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


@pytest.mark.parametrize("size", ["0", "-5"])
def test_shard_size_below_one_is_refused_before_anything_is_written(tmp_path, capsys, size):
    out = tmp_path / "idx"
    rc = main(["-q", "index", "build", str(SAMPLE), "--out", str(out), "--embedder", "hash", "--shard-size", size])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "--shard-size" in err and "at least 1" in err
    assert not out.exists()


def test_a_damaged_passage_shard_is_one_line_naming_the_shard(built, tmp_path, capsys):
    idx = tmp_path / "idx"
    shutil.copytree(built, idx)
    shard = idx / "passages" / "part-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:1000])
    capsys.readouterr()
    rc = main(["index", "search", str(idx), "white matter in preterm infants", "-k", "3", "--json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and str(shard) in err and "unreadable passage shard" in err
