"""The run directory: every stage reads and writes files here, atomically."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from claimscope.errors import BadRunDir

M = TypeVar("M", bound=BaseModel)


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid is in the name, so a temp file left by a killed process can be told from a live one
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_TEMP_PID = re.compile(r"\.(\d+)\.[^.]+\.tmp$")  # .<name>.<pid>.<random>.tmp
STALE_TEMP_SECONDS = 3600.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (a temp file's writer, say); our own pid counts as alive."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temps(root: Path, older_than: float = STALE_TEMP_SECONDS) -> int:
    """Remove hidden `.*.tmp` files that killed atomic writes left under root: their writer is gone, or (names
    without a pid) they are older than `older_than` seconds. Returns how many were removed."""
    n = 0
    now = time.time()
    for tmp in Path(root).rglob(".*.tmp"):
        m = _TEMP_PID.search(tmp.name)
        try:
            if tmp.is_file() and ((m and not pid_alive(int(m.group(1)))) or now - tmp.stat().st_mtime > older_than):
                tmp.unlink()
                n += 1
        except OSError:
            continue
    return n


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: BaseModel | dict | list) -> None:
    if isinstance(obj, BaseModel):
        text = obj.model_dump_json(indent=2)
    else:
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    atomic_write_text(path, text + "\n")


def write_jsonl(path: Path, items: Iterable[BaseModel]) -> None:
    atomic_write_text(path, "".join(item.model_dump_json() + "\n" for item in items))


def read_jsonl(path: Path, model: type[M]) -> list[M]:
    if not path.exists():
        raise BadRunDir(str(path), "missing; run the stage that writes it first")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(model.model_validate_json(line))
            except ValueError as e:
                raise BadRunDir(f"{path}:{n}", f"not a valid {model.__name__}: {str(e).splitlines()[0]}") from e
    return out


def read_json(path: Path, model: type[M]) -> M:
    if not path.exists():
        raise BadRunDir(str(path), "missing; run the stage that writes it first")
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise BadRunDir(str(path), f"not a valid {model.__name__}: {str(e).splitlines()[0]}") from e


class RunDir:
    """Paths of one run's files (see DESIGN.md)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def create(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        self.papers.mkdir(exist_ok=True)
        sweep_stale_temps(self.root)  # temp files of an interrupted earlier run
        return self

    @property
    def manifest(self) -> Path:
        return self.root / "run.json"

    @property
    def claims(self) -> Path:
        return self.root / "claims.jsonl"

    @property
    def papers(self) -> Path:
        return self.root / "papers"

    @property
    def papers_index(self) -> Path:
        return self.root / "papers.jsonl"

    @property
    def passages(self) -> Path:
        return self.root / "passages.jsonl"

    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def verdicts(self) -> Path:
        return self.root / "verdicts.jsonl"

    @property
    def replication(self) -> Path:
        return self.root / "replication.json"

    def paper_dir(self, safe_key: str) -> Path:
        return self.papers / safe_key
