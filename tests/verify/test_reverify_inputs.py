"""`claimscope reverify` inputs without a full run: what a user asked for and did not get is said, never dropped."""

from __future__ import annotations

import shutil
from pathlib import Path

from claimscope.settings import Settings
from claimscope.verify.reverify import collect_new

PAPERS = Path(__file__).resolve().parents[2] / "examples" / "papers"


def _settings(tmp_path: Path, folder: Path) -> Settings:
    return Settings.model_validate({"retrieve": {"papers_dir": str(folder), "cache_dir": str(tmp_path / "cache")}})


def test_a_pinned_version_found_nowhere_is_a_gap_not_silence(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(PAPERS / "2005.13013v1.pdf", folder / "2005.13013v1.pdf")
    found, gaps = collect_new(["2005.13013v2"], _settings(tmp_path, folder), tmp_path / "staging" / "papers", [])
    assert found == []  # v1 is not a stand-in for the v2 asked for
    (gap,) = gaps
    assert gap.item == "2005.13013v2" and "only v1" in gap.reason and "--online" in gap.reason, gap.reason


def test_an_unversioned_id_takes_every_version_held(tmp_path):
    found, gaps = collect_new(["2005.13013"], _settings(tmp_path, PAPERS), tmp_path / "staging" / "papers", [])
    assert gaps == [] and sorted(p.ref.key for p, _ in found) == ["2005.13013v1", "2005.13013v2"]
