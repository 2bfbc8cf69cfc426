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
