"""What a user sees when a command cannot do anything useful: exit 2 and one `claimscope: error:` line naming the
file or id and the problem, never a traceback."""

from __future__ import annotations

import pytest

from claimscope.cli import main

from .checks import cli_error_line

CASES = {
    "missing_claims_file": (["run", "{tmp}/nope.txt"], "nope.txt"),
    "missing_papers_dir": (["run", "{claims}", "--papers", "{tmp}/no_papers"], "no_papers"),
    "unknown_preset": (["run", "{claims}", "--preset", "turbo"], "turbo"),
    "unwritable_out": (["run", "{claims}", "--out", "{blocker}/run"], "blocker"),
    "report_of_missing_run": (["report", "{tmp}/no_run"], "no_run"),
    "reverify_missing_run": (["reverify", "{tmp}/no_run", "--papers", "2005.13013v2"], "no_run"),
    "retrieve_bad_id": (["retrieve", "../../etc/passwd", "--out", "{tmp}/r"], "../../etc/passwd"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_error_is_one_line(case, tmp_path, capsys, probe):
    o = probe("input", f"cli:{case}")
    claims = tmp_path / "claims.csv"
    claims.write_text("claim,cited\nA claim.,2005.13013v1\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is expected")
    argv, name = CASES[case]
    argv = [a.format(tmp=tmp_path, claims=claims, blocker=blocker) for a in argv]
    rc = main(["-q", *argv, *(["--cache", str(tmp_path / "cache")] if argv[0] in ("run", "retrieve") else [])])
    line = cli_error_line(capsys.readouterr().err)
    o.error = line
    assert rc == 2 and name in line, line
