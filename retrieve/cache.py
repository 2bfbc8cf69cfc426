"""Content-addressed paper cache shared by runs: `<root>/papers/<safe_key>.pdf` + `<safe_key>.json` (sha256, meta).

Files appear only complete: downloads stream into a hidden temp file in the same folder that is fsynced and renamed
over the target, so a killed download leaves no file under the final name (a stale temp is swept later).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pydantic import Field

from claimscope.rundir import pid_alive, sha256_file, write_json
from claimscope.types import Model, PaperMeta, PaperRef

logger = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 3600


class CacheEntry(Model):
    """The sidecar JSON of a cached paper."""

    ref: PaperRef
    sha256: str
    size: int
    fmt: str = "pdf"
    source_url: str | None = None
    fetched: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    meta: PaperMeta = Field(default_factory=PaperMeta)
    notes: list[str] = Field(default_factory=list)




class PaperCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.papers = self.root / "papers"

    def _paths(self, ref: PaperRef, ext: str = "pdf") -> tuple[Path, Path]:
        if ref.version is None:
            raise ValueError(f"cache entries are per version; {ref.key} has none")
        return self.papers / f"{ref.safe_key}.{ext}", self.papers / f"{ref.safe_key}.json"

    def get(self, ref: PaperRef) -> tuple[Path, CacheEntry] | None:
        """The cached file + entry for this exact id@version, checked against its sha256; None on a miss."""
        if ref.version is None:
            return None
        _, side = self._paths(ref)
        if not side.exists():
            return None
        try:
            entry = CacheEntry.model_validate_json(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            logger.warning("cache entry %s unreadable (%s); ignoring it", side, e)
            return None
        if entry.ref.key != ref.key:  # files renamed or copied by hand: never serve one version for another
            logger.warning("cache entry %s describes %s, not %s; ignoring it", side, entry.ref.key, ref.key)
            return None
        path, _ = self._paths(ref, entry.fmt)
        if not path.exists() or path.stat().st_size != entry.size or sha256_file(path) != entry.sha256:
            logger.warning("cache file for %s is missing or does not match its sha256; ignoring it", ref.key)
            return None
        return path, entry

    def versions(self, arxiv_id: str) -> list[int]:
        """Versions of this paper held in the cache (for offline resolution of unversioned ids)."""
        if not self.papers.is_dir():
            return []
        stem = PaperRef(arxiv_id=arxiv_id).safe_key
        out = []
        for side in self.papers.glob(f"{stem}v*.json"):
            v = side.stem[len(stem) + 1 :]
            if v.isdigit():
                out.append(int(v))
        return sorted(out)

    @contextmanager
    def writer(self, ref: PaperRef, ext: str = "pdf") -> Iterator[tuple[BinaryIO, Path]]:
        """Yield (file, temp path) to stream into; the caller then calls `commit`. On error the temp is removed."""
        self.papers.mkdir(parents=True, exist_ok=True)
        self.sweep()
        fd, tmp = tempfile.mkstemp(dir=self.papers, prefix=f".{ref.safe_key}.{os.getpid()}.", suffix=".part")
        tmp_path = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f, tmp_path
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise

    def commit(self, ref: PaperRef, tmp_path: Path, entry: CacheEntry) -> Path:
        """fsync + rename the finished temp file into place, then write its sidecar (atomic)."""
        final, side = self._paths(ref, entry.fmt)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, final)
        write_json(side, entry)
        logger.info("cached %s (%d bytes, sha256 %s…)", ref.key, entry.size, entry.sha256[:12])
        return final

    def sweep(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Remove temp files left by killed downloads: their writer process is gone, or they are old."""
        n = 0
        now = time.time()
        for part in self.papers.glob(".*.part"):
            try:
                if not _writer_alive(part) or now - part.stat().st_mtime > older_than:
                    part.unlink()
                    n += 1
            except OSError:
                pass
        return n


def _writer_alive(part: Path) -> bool:
    """True when the pid in a temp name `.<key>.<pid>.<random>.part` is a running process."""
    pieces = part.name.split(".")
    pid = next((int(p) for p in reversed(pieces[:-2]) if p.isdigit()), None)
    if pid is None:
        return True  # unknown writer: leave it to the age rule
    return pid_alive(pid)
    return True
