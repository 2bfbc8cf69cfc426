"""Debian's translated package descriptions (DDTP): fetch with apt into a private lists folder, parse deb822 stanzas.

`apt-get update -o Dir::State::Lists=DIR -o Acquire::Languages=en,de,...` downloads `*_i18n_Translation-XX.lz4` and
`*_binary-amd64_Packages.lz4` without touching the system's own lists. The same `Description-md5` in Translation-en and
Translation-XX marks a translation pair; `Section:` comes from the Packages file.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataNotFound

logger = logging.getLogger(__name__)

DEFAULT_LANGUAGES = ("en", "da", "it", "fr", "de", "sk", "ja", "uk", "ko", "pl", "ru", "es", "cs", "pt", "zh_CN")


@dataclass
class Description:
    package: str
    md5: str
    short: str
    long: str  # paragraphs joined by blank lines

    @property
    def text(self) -> str:
        return f"{self.short}. {self.long}".strip() if self.long else self.short


def fetch_lists(
    lists_dir: Path, languages: tuple[str, ...] | list[str] = DEFAULT_LANGUAGES, timeout: int = 600
) -> Path:
    """Run apt-get update into `lists_dir` for these languages (needs apt and the network to the Debian mirror)."""
    if shutil.which("apt-get") is None:
        raise DataNotFound("apt-get", "not found; fetch the lists on a Debian machine and pass --lists-dir")
    (lists_dir / "partial").mkdir(parents=True, exist_ok=True)
    cmd = [
        "apt-get",
        "update",
        "-o",
        f"Dir::State::Lists={lists_dir}",
        "-o",
        f"Acquire::Languages={','.join(languages)}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise DataNotFound(str(lists_dir), f"apt-get update failed: {proc.stderr.strip().splitlines()[-1:]}")
    return lists_dir


def read_text(path: Path) -> str:
    """A lists file as text (.lz4 through the `lz4` tool or the `lz4` Python module; plain files as they are)."""
    if path.suffix != ".lz4":
        return path.read_text(encoding="utf-8", errors="replace")
    try:
        import lz4.frame

        return lz4.frame.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    except ImportError:
        pass
    if shutil.which("lz4") is None:
        raise DataNotFound(str(path), "needs the lz4 tool (apt-get install lz4) or the lz4 Python package")
    out = subprocess.run(["lz4", "-dc", str(path)], capture_output=True, check=True)
    return out.stdout.decode("utf-8", errors="replace")


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """deb822 paragraphs: `Field: value` with continuation lines starting with a space."""
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t" and key is not None:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def parse_description(value: str) -> tuple[str, str]:
    """(short description, long description) from a Description field; ' .' lines are paragraph breaks."""
    first, *rest = value.split("\n")
    paras: list[list[str]] = [[]]
    for line in rest:
        s = line.strip()
        if s == ".":
            paras.append([])
        elif s:
            paras[-1].append(s)
    long = "\n\n".join(" ".join(p) for p in paras if p)
    return first.strip(), long


def translation_files(lists_dir: Path, lang: str) -> list[Path]:
    code = lang.replace("_", "%5f")
    return sorted(lists_dir.glob(f"*_main_i18n_Translation-{code}*"))


def load_translations(lists_dir: Path, lang: str) -> dict[str, Description]:
    """Description-md5 -> description in `lang` (first file wins: the release before its updates)."""
    files = sorted(translation_files(lists_dir, lang), key=lambda p: ("-security" in p.name, "-updates" in p.name))
    if not files:
        raise DataNotFound(f"{lists_dir}/*Translation-{lang}*", "no translation file for this language")
    out: dict[str, Description] = {}
    for path in files:
        for st in stanzas(read_text(path)):
            md5, value = st.get("Description-md5"), st.get(f"Description-{lang}")
            if md5 and value and md5 not in out:
                short, long = parse_description(value)
                out[md5] = Description(st.get("Package", ""), md5, short, long)
    return out


def load_sections(lists_dir: Path) -> dict[str, str]:
    """Description-md5 -> Section (of the first package with that description) from the Packages files."""
    files = sorted(
        lists_dir.glob("*_binary-amd64_Packages*"), key=lambda p: ("-security" in p.name, "-updates" in p.name)
    )
    if not files:
        raise DataNotFound(f"{lists_dir}/*_binary-amd64_Packages*", "no Packages file")
    out: dict[str, str] = {}
    for path in files:
        for st in stanzas(read_text(path)):
            md5, section = st.get("Description-md5"), st.get("Section")
            if md5 and section and md5 not in out:
                out[md5] = section.split("/")[-1]
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
