"""`claimscope retrieve` arguments that cannot work are one clear line before anything is written, never a
traceback."""

from __future__ import annotations

import pytest

from claimscope.cli import main


@pytest.mark.parametrize(("args", "words"), [
    (["--since", "2020-13"], "--since"),
    (["--since", "last-year"], "YYYY"),
    (["--since", "2020-02-30"], "--since"),
    (["--max", "0"], "--max"),
])
def test_bad_search_arguments_are_one_line(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    rc = main(["-q", "retrieve", "--search", "intermediate-task transfer", "--online", *args, "--out", str(out),
               "--cache", str(tmp_path / "cache")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not out.exists()  # refused before the run dir was made and before any request


def test_retrieve_gaps_file_follows_what_the_run_dir_holds(tmp_path):
    import json
    import shutil

    from .conftest import EXAMPLE_PDF

    folder = tmp_path / "papers"
    folder.mkdir()
    out, cache = tmp_path / "run", str(tmp_path / "cache")
    gaps_file = out / "retrieve_gaps.jsonl"

    def gaps() -> list[str]:
        return [json.loads(line)["item"] for line in gaps_file.read_text().splitlines()] if gaps_file.exists() else []

    assert main(["-q", "retrieve", "2005.13013v1", "--papers", str(folder), "--out", str(out), "--cache", cache]) == 1
    assert gaps() == ["2005.13013v1"]
    assert main(["-q", "retrieve", "2104.07412v1", "--papers", str(folder), "--out", str(out), "--cache", cache]) == 1
    assert gaps() == ["2005.13013v1", "2104.07412v1"]  # the earlier gap still holds: v1 is still not in the run
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    assert main(["-q", "retrieve", "2005.13013v1", "--papers", str(folder), "--out", str(out), "--cache", cache]) == 0
    assert gaps() == ["2104.07412v1"]  # v1 found now: its gap is gone, the other stays
