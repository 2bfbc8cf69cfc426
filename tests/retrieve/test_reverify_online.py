"""`claimscope reverify RUN --papers ID --online` with an id given without a version: the latest version on arXiv is
looked for too, even when the papers folder holds an older one (against the loopback arXiv)."""

from __future__ import annotations

import shutil

from claimscope.settings import Settings
from claimscope.verify.reverify import collect_new

from .conftest import EXAMPLE_PDF


def _settings(tmp_path, folder, *, offline: bool) -> Settings:
    return Settings.model_validate({"retrieve": {"papers_dir": str(folder), "cache_dir": str(tmp_path / "cache"),
                                                 "offline": offline, "delay_seconds": 0.0, "timeout_seconds": 30}})


def test_an_unversioned_id_online_also_fetches_the_latest_version(fake_arxiv, tmp_path):
    # before: v1 in the folder answered for "2005.13013" and arXiv was never asked, so reverify said "nothing new"
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    found, gaps = collect_new(["2005.13013"], _settings(tmp_path, folder, offline=False), tmp_path / "s1", [])
    assert gaps == [] and sorted(p.ref.key for p, _ in found) == ["2005.13013v1", "2005.13013v2"]
    v2 = next(p for p, _ in found if p.ref.version == 2)
    assert v2.source in ("arxiv", "cache"), v2.source
    # offline nothing is asked: the versions held answer
    found, gaps = collect_new(["2005.13013"], _settings(tmp_path, folder, offline=True), tmp_path / "s2", [])
    assert gaps == [] and [p.ref.key for p, _ in found] == ["2005.13013v1"]


def test_no_answer_from_arxiv_keeps_the_versions_held(fake_arxiv, tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    fake_arxiv.stop()  # arXiv unreachable
    settings = _settings(tmp_path, folder, offline=False)
    settings.retrieve.num_retries = 0
    found, _ = collect_new(["2005.13013"], settings, tmp_path / "s", [])
    assert [p.ref.key for p, _ in found] == ["2005.13013v1"]
