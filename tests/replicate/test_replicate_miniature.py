"""The miniature path on CPU: Debian lists -> task files + manifest -> tokenizer -> toy grid -> replication.json."""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from claimscope.replicate.miniature.debian import load_sections, load_translations, parse_description, stanzas
from claimscope.replicate.miniature.prepare import prepare

SECTIONS = ["games", "net", "sound", "utils", "libs"]
NOUNS = {"en": "game network sound tool library file server player music editor".split(),
         "de": "Spiel Netzwerk Klang Werkzeug Bibliothek Datei Server Spieler Musik Editor".split(),
         "fr": "jeu réseau son outil bibliothèque fichier serveur joueur musique éditeur".split()}  # fmt: skip


def _desc(lang: str, rng: random.Random, i: int) -> str:
    words = NOUNS[lang]
    short = f"{words[i % 10]} {words[(i * 3) % 10]} {words[(i * 7) % 10]} {i}"
    long = " ".join(rng.choice(words) for _ in range(12))
    return f"{short}\n {long}\n .\n {words[i % 10]} {i}"


def write_lists(root: Path, n: int = 160, compress: bool = False) -> Path:
    """Lists in apt's file layout and deb822 format (small, made for the test)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    pk, tr = [], {lang: [] for lang in NOUNS}
    for i in range(n):
        md5 = f"{i:032x}"
        pk.append(
            f"Package: pkg{i}\nVersion: 1.0\nSection: {SECTIONS[i % 5]}\nDescription: x\nDescription-md5: {md5}\n"
        )
        for lang in NOUNS:
            if lang == "en" or i % 3 != 0:  # two thirds of the packages are translated
                tr[lang].append(f"Package: pkg{i}\nDescription-md5: {md5}\nDescription-{lang}: {_desc(lang, rng, i)}\n")
    base = "deb.debian.org_debian_dists_bookworm"
    (root / f"{base}_InRelease").write_text("Origin: Debian\nSuite: oldstable\nCodename: bookworm\nDate: today\n")
    (root / f"{base}_main_binary-amd64_Packages").write_text("\n".join(pk))
    for lang, stz in tr.items():
        path = root / f"{base}_main_i18n_Translation-{lang}"
        path.write_text("\n".join(stz))
        if compress and lang == "de":
            subprocess.run(["lz4", "-q", "--rm", str(path), str(path) + ".lz4"], check=True)
    return root


def test_deb822_parsing(tmp_path: Path) -> None:
    short, long = parse_description("Real-time strategy game\n 0 A.D. is a game.\n It is free.\n .\n Data files.")
    assert short == "Real-time strategy game"
    assert long == "0 A.D. is a game. It is free.\n\nData files."
    st = list(stanzas("Package: a\nDescription-en: x\n y\n\nPackage: b\nSection: net\n"))
    assert st == [{"Package": "a", "Description-en": "x\n y"}, {"Package": "b", "Section": "net"}]
    lists = write_lists(tmp_path / "lists", n=12, compress=shutil.which("lz4") is not None)
    de = load_translations(lists, "de")
    assert len(de) == 8 and de[f"{1:032x}"].short.startswith("Netzwerk")
    assert load_sections(lists)[f"{2:032x}"] == "sound"


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mini")
    lists = write_lists(root / "lists")
    prepare(lists, root / "data", languages=["en", "de", "fr"], n_sections=4, n_test=12, n_retrieval=12, n_dev=8,
            min_test=3, mlm_cap=200, match_cap=40)  # fmt: skip
    return root / "data"


def test_prepare_holds_out_evaluation_text(mini_data: Path) -> None:
    m = json.loads((mini_data / "manifest.json").read_text())
    assert m["release"]["Codename"] == "bookworm"
    assert m["labels"] == ["games", "net", "sound", "utils"]  # "libs" is not a topical section
    assert m["target_languages"] == ["en", "de", "fr"]
    for name, f in m["files"].items():
        assert Path(f["path"]).exists(), name
        assert len(f["sha256"]) == 64
    assert all(len(v["sha256"]) == 64 for v in m["source_files"].values())

    def rows(rel: str) -> list[dict]:
        return [json.loads(x) for x in gzip.open(mini_data / rel, "rt")]

    test_md5 = {r["md5"] for lang in ("en", "de", "fr") for r in rows(f"debsec/test.{lang}.jsonl.gz")}
    ret_md5 = {r["tgt_id"].split(":")[1] for lang in ("de", "fr") for r in rows(f"debret/test.{lang}.jsonl.gz")}
    train_md5 = {r["md5"] for r in rows("debsec/train.en.jsonl.gz") + rows("debsec/dev.en.jsonl.gz")}
    assert test_md5 and ret_md5 and train_md5
    assert not (test_md5 | ret_md5) & train_md5
    mlm_text = {r["text"] for lang in ("en", "de", "fr") for r in rows(f"mlm/train.{lang}.jsonl.gz")}
    held_text = {r["text_a"] for lang in ("en", "de", "fr") for r in rows(f"debsec/test.{lang}.jsonl.gz")}
    assert not mlm_text & held_text
    # the German test items carry the English item's label (zero-shot transfer on translations)
    en_labels = {r["md5"]: r["label"] for r in rows("debsec/test.en.jsonl.gz")}
    assert all(en_labels[r["md5"]] == r["label"] for r in rows("debsec/test.de.jsonl.gz"))
    mc = rows("debmatch/train.en.jsonl.gz")[0]
    assert len(mc["choices"]) == 4 and 0 <= mc["label"] < 4


def test_toy_grid_end_to_end(mini_data: Path, tmp_path: Path) -> None:
    from claimscope.replicate.miniature.grid import MiniatureSpec, run_grid
    from claimscope.replicate.miniature.tokenizer import corpus_texts, train_tokenizer

    train_tokenizer(corpus_texts(mini_data), tmp_path / "tok", vocab_size=300)
    spec = MiniatureSpec(sizes=["toy1", "toy2"], seeds=[1, 2], pretrain_steps=3, pretrain_batch=8, precision="fp32",
                         finetune_max_steps=2, limit_eval=8, num_threads=1)  # fmt: skip
    doc = run_grid(mini_data, tmp_path / "tok", tmp_path / "run", spec)
    on_disk = json.loads((tmp_path / "run" / "replication.json").read_text())
    assert on_disk["scale"] == "miniature" and on_disk["summary"] == json.loads(json.dumps(doc["summary"]))
    assert len(doc["cells"]) == 2 * 2 * 2 * 2  # sizes x {baseline, debmatch} x seeds x {debsec, debret}
    p1, p2 = (doc["sizes"][s]["params"]["non_embedding"] for s in ("toy1", "toy2"))
    assert p2 > 4 * p1
    row = next(r for r in doc["summary"] if r["size"] == "toy2" and r["target"] == "debsec")
    assert row["baseline_gap"]["n"] == 2 and row["baseline_gap"]["ci95"] is not None
    assert row["delta_gap"]["n"] == 2
    cell = next(c for c in doc["cells"] if c["target"] == "debsec")
    assert set(cell["primary"]) == {"en", "de", "fr"} and cell["paper"] is None
    # one size per command: rerunning a size keeps the others' results, and finished cells are not recomputed
    again = run_grid(mini_data, tmp_path / "tok", tmp_path / "run", dataclasses.replace(spec, sizes=["toy1"]))
    assert sorted(again["sizes"]) == ["toy1", "toy2"] and len(again["cells"]) == len(doc["cells"])
    key = [(c["size"], c["intermediate"], c["seed"], c["target"], c["primary"]) for c in doc["cells"]]
    assert sorted(key, key=str) == sorted(
        [(c["size"], c["intermediate"], c["seed"], c["target"], c["primary"]) for c in again["cells"]], key=str
    )
    from claimscope.replicate.miniature.plot import plot_gap_vs_size

    svg = plot_gap_vs_size(tmp_path / "run" / "replication.json", tmp_path / "gap.svg")
    assert "<svg" in svg.read_text()[:500]


def test_plot_of_a_wrong_file_or_suffix_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: a JSON without the miniature's summary was a KeyError traceback, `--out gap.txt` matplotlib's ValueError
    from claimscope.cli import main

    shipped = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "miniature" / "replication.json"
    (tmp_path / "other.json").write_text('{"cells": []}')
    (tmp_path / "broken.json").write_text('{"summary": [')
    cases = [  # (replication.json, figure, the file the error names, the problem)
        (tmp_path / "other.json", tmp_path / "a.svg", tmp_path / "other.json", "no summary rows for the miniature"),
        (tmp_path / "broken.json", tmp_path / "a.svg", tmp_path / "broken.json", "cannot read it as JSON"),
        (shipped, tmp_path / "a.txt", tmp_path / "a.txt", "written as .svg, .png or .pdf"),
    ]
    for replication, figure, named, message in cases:
        assert main(["-q", "replicate-miniature", "plot", str(replication), "--out", str(figure)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and str(named) in err[0], err
    assert main(["-q", "replicate-miniature", "plot", str(shipped), "--out", str(tmp_path / "gap.png")]) == 0
    assert (tmp_path / "gap.png").read_bytes()[:4] == b"\x89PNG"
