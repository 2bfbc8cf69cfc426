"""Assertions shared by the reliability tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from claimscope.errors import ClaimscopeError

TEMP_SUFFIXES = (".tmp", ".part", ".old")


def typed_or_ok(fn: Callable[[], Any], outcome, *names: str) -> tuple[str, Any]:  # type: ignore[no-untyped-def]
    """Call fn: a result is ("ok", value); a ClaimscopeError is ("error", err) after checking its message is one line
    naming one of `names`. Anything else propagates (the probe counts it as a crash)."""
    try:
        return "ok", fn()
    except ClaimscopeError as e:
        msg = str(e)
        outcome.error = msg[:300]
        assert_one_line(msg, *names)
        return "error", e


def assert_one_line(msg: str, *names: str) -> None:
    assert msg and "\n" not in msg.strip(), f"message is not one line: {msg!r}"
    assert len(msg) < 2000, f"message is {len(msg)} characters long"
    if names:
        assert any(n in msg for n in names), f"message names none of {names}: {msg!r}"


def cli_error_line(stderr: str) -> str:
    """The one `claimscope: error:` line of a failed command (and no traceback)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("claimscope: error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def half_written(run_dir: Path) -> list[str]:
    """Files under their final names in a run dir that do not parse (.json/.jsonl): data lost."""
    problems = []
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if not p.is_file() or any(part.endswith(TEMP_SUFFIXES) for part in rel.parts):
            continue
        try:
            if p.suffix == ".json":
                json.loads(p.read_text(encoding="utf-8"))
            elif p.suffix == ".jsonl":
                for line in p.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        json.loads(line)
        except (ValueError, UnicodeDecodeError) as e:
            problems.append(f"{rel}: does not parse ({e})")
    return problems


def temp_leftovers(run_dir: Path) -> list[str]:
    """Temp files/folders (hidden *.tmp of atomic writes, index.tmp / index.old of the index swap)."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.name.endswith(TEMP_SUFFIXES))


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()
