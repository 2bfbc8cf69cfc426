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


def test_the_reason_names_a_full_sentence_confidence_move():
    # the example's three-phase claim after v2 came in: the claim as cut holds at 0.70, its full sentence went
    # SUPPORTED 0.99 -> 0.47; the diff listed it with only 'new evidence from 2005.13013v2', so nothing visibly moved
    from claimscope.types import Evidence, Label, Verdict
    from claimscope.verify.reverify import diff_verdicts

    ev1 = Evidence(passage_id="p1", quote="We propose a three-phase approach", paper="2005.13013v1", page=2)
    ev2 = Evidence(passage_id="p9", quote="We also investigate", paper="2005.13013v2", page=1)

    def verdict(full_conf: float, evidence: list[Evidence]) -> Verdict:
        full = Verdict(claim_id="c", label=Label.SUPPORTED, confidence=full_conf, evidence=evidence)
        return Verdict(claim_id="c", label=Label.SUPPORTED, confidence=0.70, evidence=evidence,
                       full_text_verdict=full)

    (change,) = diff_verdicts([verdict(0.99, [ev1])], [verdict(0.47, [ev1, ev2])], {"2005.13013v2"})
    assert "full sentence: confidence 0.99 \u2192 0.47" in (change.reason or ""), change.reason


def test_a_paper_file_of_an_unread_format_is_named_as_such(tmp_path):
    import pytest

    from claimscope.errors import PaperNotFound
    from claimscope.verify.reverify import _resolve_inputs

    docx = tmp_path / "2005.13013v2.docx"  # named by its id; renaming it would not help, the format is the problem
    docx.write_bytes(b"PK\x03\x04")
    with pytest.raises(PaperNotFound, match=r"\.docx") as e:
        _resolve_inputs([docx])
    assert "cannot read .docx" in str(e.value) and ".pdf" in str(e.value)


def test_ids_are_still_looked_up_when_the_runs_papers_folder_is_gone(tmp_path):
    # the run was made with --papers /some/tmp/folder that was deleted since: the id is looked up in the cache
    import hashlib

    from claimscope.retrieve.cache import CacheEntry, PaperCache
    from claimscope.types import PaperRef

    data = (PAPERS / "2005.13013v1.pdf").read_bytes()
    ref = PaperRef(arxiv_id="2005.13013", version=1)
    cache = PaperCache(tmp_path / "cache")
    with cache.writer(ref) as (f, tmp):
        f.write(data)
    cache.commit(ref, tmp, CacheEntry(ref=ref, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    found, gaps = collect_new(["2005.13013v1"], _settings(tmp_path, tmp_path / "deleted"),
                              tmp_path / "staging" / "papers", [])
    assert gaps == [] and [p.ref.key for p, _ in found] == ["2005.13013v1"]


def _retrieved_run(tmp_path: Path, *ids: str) -> Path:
    """A run dir with papers.jsonl / passages.jsonl from `claimscope retrieve` and no claims: enough for a reverify
    that finds nothing new (it returns before any model is loaded)."""
    from claimscope.cli import main
    from claimscope.rundir import write_json, write_jsonl
    from claimscope.types import RunManifest

    run = tmp_path / "run"
    assert main(["-q", "retrieve", *ids, "--papers", str(PAPERS), "--out", str(run), "--cache",
                 str(tmp_path / "cache")]) == 0
    write_jsonl(run / "claims.jsonl", [])
    write_jsonl(run / "verdicts.jsonl", [])
    settings = _settings(tmp_path, PAPERS).model_dump(mode="json")
    write_json(run / "run.json", RunManifest(name="run", created="2026-01-01T00:00:00Z", settings=settings))
    return run


def test_the_same_file_without_a_version_in_its_name_is_already_in_the_run(tmp_path):
    # /work/shared/papers/2509.23657.txt is byte for byte examples/papers/2509.23657v1.txt: it was added again as
    # '2509.23657', its passages embedded a second time and held twice
    from claimscope.verify.reverify import reverify

    run = _retrieved_run(tmp_path, "2509.23657v1")
    same = tmp_path / "new" / "2509.23657.txt"
    same.parent.mkdir()
    shutil.copy(PAPERS / "2509.23657v1.txt", same)
    before = (run / "papers.jsonl").read_bytes()
    result = reverify(run, [same], render=False)
    assert result.new_papers == [] and result.skipped == ["2509.23657v1"]
    assert (run / "papers.jsonl").read_bytes() == before and not (run / "papers" / "2509.23657").exists()


def test_search_with_no_hits_kept_is_refused(tmp_path, capsys):
    from claimscope.cli import main

    run = _retrieved_run(tmp_path, "2509.23657v1")
    assert main(["-q", "reverify", str(run), "--search", "x", "--max", "0", "--online"]) == 2
    assert "--max 0" in capsys.readouterr().err


def test_the_reason_writes_labels_and_versions_as_the_report_does():
    # before: "SUPPORTED -> NOT_ENOUGH_INFO; 2005.13013v1 (now decides) decides; numbers: not_applicable -> mismatch"
    from claimscope.types import Checks, Evidence, Label, NumberCheck, Verdict
    from claimscope.verify.reverify import change_reason

    ev = Evidence(passage_id="p1", quote="We obtain a 6.1 point improvement", paper="2005.13013v1", page=1)
    before = Verdict(claim_id="c", label=Label.SUPPORTED, confidence=0.7, evidence=[ev],
                     checks=Checks(version_used=["2509.23657v1"]))
    after = Verdict(claim_id="c", label=Label.NOT_ENOUGH_INFO, confidence=0.6, evidence=[ev],
                    checks=Checks(version_used=["2005.13013v1"], numbers=NumberCheck(status="mismatch")))
    reason = change_reason(before, after, {"2005.13013v1"})
    assert reason.startswith("SUPPORTED \u2192 NOT ENOUGH INFO; 2005.13013v1 decides instead of 2509.23657v1; "), reason
    assert "numbers: not applicable \u2192 mismatch" in reason and "_" not in reason.replace("2005.13013v1", "")
