"""`claimscope reverify` on the example report: a run made with only 2005.13013v1, then v2 arrives.

The version-dependent claims (average improvement 5.4, nine intermediate tasks) must change and be named in the diff
with the v1/v2 difference; the others keep their label; a second reverify changes nothing and embeds nothing; an
interrupted reverify leaves the old run usable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from claimscope.cli import main
from claimscope.errors import PaperNotFound
from claimscope.rundir import read_json, read_jsonl, write_json, write_jsonl
from claimscope.types import Claim, Evidence, Label, Passage, ReverifyDiff, Verdict
from claimscope.verify.reverify import COMMIT, STAGING, _resolve_inputs, diff_verdicts, recover

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "assignee_report.txt"
PAPERS = ROOT / "examples" / "papers"
V2 = PAPERS / "2005.13013v2.md"
ADAPTER = ROOT / "verify" / "models" / "stance-minilm-lora" / "adapter_model.safetensors"
# the bundled stance model is the default; another scorer can be named for machines without the adapter
STANCE = os.environ.get("CLAIMSCOPE_TEST_STANCE_MODEL", "bundled")

needs_stance = pytest.mark.skipif(
    STANCE == "bundled" and not ADAPTER.exists(),
    reason=f"bundled stance adapter {ADAPTER.relative_to(ROOT)} is not built (verify/train_stance.py); the "
           "version-dependent verdicts are only meaningful with the default stance model",
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The example run with only v1 held (kept pristine), and a copy reverified with v2 through the CLI."""
    tmp = tmp_path_factory.mktemp("reverify")
    papers = tmp / "papers"
    papers.mkdir()
    for name in ("2005.13013v1.pdf", "2509.23657v1.txt"):
        shutil.copy(PAPERS / name, papers / name)
    base = tmp / "base"
    extra = [] if STANCE == "bundled" else ["--stance-model", STANCE]
    assert main(["-q", "run", str(EXAMPLE), "--out", str(base), "--papers", str(papers), "--cache",
                 str(tmp / "cache"), *extra]) == 0
    after = tmp / "after"
    shutil.copytree(base, after)
    assert main(["-q", "reverify", str(after), "--papers", str(V2)]) == 0
    return base, after


def _claim_id(run: Path, fragment: str) -> str:
    return next(c.id for c in read_jsonl(run / "claims.jsonl", Claim) if fragment in c.text)


def _verdicts(run: Path) -> dict[str, Verdict]:
    return {v.claim_id: v for v in read_jsonl(run / "verdicts.jsonl", Verdict)}


VERSION_DEPENDENT = {"average improvement of 5.4": ("6.1", "5.4"), "nine different English intermediate": ("seven",)}
VERSION_INDEPENDENT = ["Applying intermediate-task training to BUCC and Tatoeba", "three-phase approach"]


@needs_stance
@pytest.mark.parametrize("fragment", sorted(VERSION_DEPENDENT))
def test_version_dependent_claims_change_and_the_diff_names_the_v1_difference(runs, fragment):
    base, after = runs
    cid = _claim_id(base, fragment)
    before_v, after_v = _verdicts(base)[cid], _verdicts(after)[cid]
    assert before_v.checks.version_used[0] == "2005.13013v1"
    assert after_v.checks.version_used[0] == "2005.13013v2"  # the cited version now decides
    assert before_v.checks.numbers.status == "mismatch" and after_v.checks.numbers.status == "consistent"
    diff = read_json(after / "diff.json", ReverifyDiff)
    change = next((c for c in diff.changed if c.claim_id == cid), None)
    assert change is not None, [c.claim_id for c in diff.changed]
    assert change.before_label == before_v.label and change.after_label == after_v.label
    assert change.new_evidence and all(e.paper == "2005.13013v2" for e in change.new_evidence)
    v2_passages = {p.id: p for p in read_jsonl(after / "passages.jsonl", Passage) if p.paper == "2005.13013v2"}
    for e in change.new_evidence:
        assert e.quote in v2_passages[e.passage_id].text
    assert "2005.13013v1 states different numbers" in change.reason
    assert all(word in change.reason for word in VERSION_DEPENDENT[fragment]), change.reason


@needs_stance
@pytest.mark.parametrize("fragment", VERSION_INDEPENDENT)
def test_other_claims_keep_their_label(runs, fragment):
    base, after = runs
    cid = _claim_id(base, fragment)
    assert _verdicts(base)[cid].label == _verdicts(after)[cid].label


@needs_stance
def test_reverify_adds_only_the_new_paper_and_records_it(runs):
    base, after = runs
    diff = read_json(after / "diff.json", ReverifyDiff)
    assert diff.new_papers == ["2005.13013v2"] and diff.papers_bearing_on_no_claim == []
    old_ids = [p.id for p in read_jsonl(base / "passages.jsonl", Passage)]
    new = read_jsonl(after / "passages.jsonl", Passage)
    assert [p.id for p in new[: len(old_ids)]] == old_ids
    added = new[len(old_ids):]
    assert added and {p.paper for p in added} == {"2005.13013v2"}
    manifest = json.loads((after / "index" / "manifest.json").read_text())
    assert manifest["additions"][-1]["added"] == len(added) and "2005.13013v2" in manifest["additions"][-1]["reason"]
    assert manifest["passage_ids"][: len(old_ids)] == json.loads((base / "index" / "manifest.json").read_text())[
        "passage_ids"]
    history = sorted((after / "history").iterdir())
    assert len(history) == 1
    assert (history[0] / "verdicts.jsonl").read_bytes() == (base / "verdicts.jsonl").read_bytes()
    assert (after / "papers" / "2005.13013v2" / "paper.md").read_bytes() == V2.read_bytes()
    assert "Changes since the earlier run" in (after / "report.md").read_text()
    assert not (after / STAGING).exists()


@needs_stance
def test_second_reverify_changes_nothing_and_embeds_nothing(runs, monkeypatch):
    import claimscope.verify.index as index_mod
    from claimscope.verify.reverify import reverify

    _, after = runs
    names = ["verdicts.jsonl", "diff.json", "passages.jsonl", "papers.jsonl", "claims.jsonl", "index/manifest.json",
             "report.md"]
    before = {n: (after / n).read_bytes() for n in names}
    calls: list[int] = []
    monkeypatch.setattr(index_mod, "embed_texts", lambda texts, *a, **k: calls.append(len(texts)))
    result = reverify(after, [V2])
    assert result.diff.changed == [] and result.new_papers == [] and result.skipped == ["2005.13013v2"]
    assert calls == []
    assert {n: (after / n).read_bytes() for n in names} == before
    assert len(list((after / "history").iterdir())) == 1


@needs_stance
def test_interrupted_reverify_leaves_the_previous_run_usable(runs, tmp_path, monkeypatch):
    from claimscope.verify import run as run_mod
    from claimscope.verify.index import EvidenceIndex
    from claimscope.verify.reverify import reverify

    base, _ = runs
    run = tmp_path / "run"
    shutil.copytree(base, run)
    names = ["verdicts.jsonl", "passages.jsonl", "papers.jsonl", "claims.jsonl", "run.json", "index/manifest.json"]
    before = {n: (run / n).read_bytes() for n in names}

    def crash(self, claims):
        raise RuntimeError("killed while verifying")

    monkeypatch.setattr(run_mod.Verifier, "verify", crash)
    with pytest.raises(RuntimeError, match="killed while verifying"):
        reverify(run, [V2], render=False)
    assert {n: (run / n).read_bytes() for n in names} == before
    assert not (run / STAGING).exists() and not (run / "papers" / "2005.13013v2").exists()
    assert not (run / "history").exists() and not (run / "diff.json").exists()
    passages = read_jsonl(run / "passages.jsonl", Passage)
    index = EvidenceIndex.load(run / "index", passages)
    assert index is not None and [p.id for p in index.passages] == [p.id for p in passages]


# ---- no model needed ----------------------------------------------------------------------------------------------
def _verdict(cid: str, label: Label, conf: float, evidence: list[Evidence] = (), used: str = "2005.13013v1",
             warnings: list[str] = ()) -> Verdict:
    v = Verdict(claim_id=cid, label=label, confidence=conf, evidence=list(evidence))
    v.checks.version_used = [used]
    v.checks.version_cited = "2005.13013v2"
    v.checks.warnings = list(warnings)
    return v


def test_diff_keeps_only_label_changes_and_confidence_moves_of_at_least_005():
    ev_old = Evidence(passage_id="p1", quote="seven tasks", paper="2005.13013v1", page=2)
    ev_new = Evidence(passage_id="p9", quote="nine tasks", paper="2005.13013v2", page=1)
    before = [_verdict("a", Label.NOT_ENOUGH_INFO, 0.6, [ev_old]), _verdict("b", Label.SUPPORTED, 0.80, [ev_old]),
              _verdict("c", Label.SUPPORTED, 0.80, [ev_old])]
    warn = "2005.13013v1 states different numbers: claim says nine; v1 says seven (differs); the verdict holds for v2"
    after = [_verdict("a", Label.SUPPORTED, 0.9, [ev_new, ev_old], used="2005.13013v2", warnings=[warn]),
             _verdict("b", Label.SUPPORTED, 0.83, [ev_old]), _verdict("c", Label.SUPPORTED, 0.74, [ev_old])]
    changes = {c.claim_id: c for c in diff_verdicts(before, after, {"2005.13013v2"})}
    assert set(changes) == {"a", "c"}
    a = changes["a"]
    assert a.before_label == Label.NOT_ENOUGH_INFO and a.after_label == Label.SUPPORTED
    assert [e.passage_id for e in a.new_evidence] == ["p9"]
    assert "2005.13013v2" in a.reason and "states different numbers" in a.reason
    assert changes["c"].new_evidence == [] and "0.80" in changes["c"].reason


def test_diff_lists_a_claim_whose_verdict_holds_when_a_new_version_states_other_numbers():
    # claims extracted from v1, cited without a version: v1 still decides after v2 comes in, but v2 disagrees
    ev_v1 = Evidence(passage_id="p1", quote="a 6.1 point improvement", paper="2005.13013v1", page=1)
    warn = ("2005.13013v2 states different numbers: claim says 6.1 point improvement; 2005.13013v2 p.1 says 5.4 point "
            "improvement (differs); the verdict holds for 2005.13013v1 only")
    before = [_verdict("d", Label.SUPPORTED, 0.99, [ev_v1]), _verdict("e", Label.SUPPORTED, 0.99, [ev_v1])]
    after = [_verdict("d", Label.SUPPORTED, 0.99, [ev_v1], warnings=[warn]),
             _verdict("e", Label.SUPPORTED, 0.99, [ev_v1])]
    changes = diff_verdicts(before, after, {"2005.13013v2"})
    assert [c.claim_id for c in changes] == ["d"]
    assert changes[0].after_label == Label.SUPPORTED and "5.4 point improvement" in (changes[0].reason or "")
    assert diff_verdicts(after, after, {"2005.13013v2"}) == []  # the same notes again: nothing new


def test_inputs_must_be_files_named_by_arxiv_id_or_ids(tmp_path):
    odd = tmp_path / "notes.md"
    odd.write_text("x")
    with pytest.raises(PaperNotFound, match="notes.md"):
        _resolve_inputs([odd])
    with pytest.raises(PaperNotFound, match="not-a-paper"):
        _resolve_inputs(["not-a-paper"])
    files, refs = _resolve_inputs([V2, "arXiv:2005.13013v3"])
    assert files == [V2] and [r.key for r in refs] == ["2005.13013v3"]


def _tiny_run(root: Path, tag: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "verdicts.jsonl", [Verdict(claim_id=tag, label=Label.SUPPORTED, confidence=0.5)])
    (root / "index").mkdir(exist_ok=True)
    write_json(root / "index" / "manifest.json", {"tag": tag})


def test_recover_rolls_a_committed_reverify_forward_and_discards_an_uncommitted_one(tmp_path):
    run = tmp_path / "run"
    _tiny_run(run, "old")
    _tiny_run(run / STAGING, "new")
    assert recover(run) == "discarded"
    assert read_jsonl(run / "verdicts.jsonl", Verdict)[0].claim_id == "old" and not (run / STAGING).exists()

    _tiny_run(run / STAGING, "new")
    write_json(run / STAGING / COMMIT, {"new_papers": ["x"]})
    # the crash came after the verdicts were swapped in but before the index was
    os.replace(run / STAGING / "verdicts.jsonl", run / "verdicts.jsonl")
    assert recover(run) == "rolled forward"
    assert read_jsonl(run / "verdicts.jsonl", Verdict)[0].claim_id == "new"
    assert json.loads((run / "index" / "manifest.json").read_text()) == {"tag": "new"}
    assert not (run / STAGING).exists() and recover(run) is None


def test_cli_needs_new_papers_and_a_finished_run(tmp_path, capsys):
    assert main(["-q", "reverify", str(tmp_path)]) == 2
    assert main(["-q", "reverify", str(tmp_path / "nowhere"), "--papers", str(V2)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--papers" in err[0] and "nowhere" in err[1] and "claimscope run" in err[1]
