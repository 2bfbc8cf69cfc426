"""HTML report: one self-contained file, everything escaped, no external references, optional sections."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest

from claimscope.report_templates.context import build_context
from claimscope.report_templates.render import csp_hash, html_env, render_html, render_run


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.script_bodies.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_bodies[-1] += data


def external_references(html: str) -> list[str]:
    """Every place the page could fetch something from elsewhere: src/href/srcset/xlink:href/action attributes,
    CSS url() and @import. Same-page anchors (#...) and data: URIs are fine."""
    p = _Collect()
    p.feed(html)
    found = []
    for tag, attrs in p.tags:
        for name in ("src", "href", "srcset", "xlink:href", "action", "formaction", "poster", "data"):
            val = attrs.get(name)
            if val is not None and not (val.startswith("#") or val.startswith("data:")):
                found.append(f"<{tag} {name}={val!r}>")
    for m in re.finditer(r"url\(\s*['\"]?(?!data:|#)([^'\")]+)|@import", html):
        found.append(m.group(0))
    return found


def test_html_is_self_contained(example_run_full: Path) -> None:
    render_run(example_run_full, ["html"])
    html = (example_run_full / "report.html").read_text(encoding="utf-8")
    assert external_references(html) == []
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html.upper().replace("<!DOCTYPE HTML", "")
    assert html.count("<svg") == 2  # replication + reliability, inline


def test_detector_finds_external_references() -> None:
    bad = '<img src="http://x.invalid/a.png"><link rel="stylesheet" href="https://cdn.invalid/s.css">' \
          '<style>body{background:url(http://x.invalid/b.png)}</style><a href="#ok">ok</a>'
    assert len(external_references(bad)) == 3


def test_html_escapes_claim_and_pdf_text(example_run: Path) -> None:
    html = render_html(build_context(example_run))
    p = _Collect()
    p.feed(html)
    scripts = [a for t, a in p.tags if t == "script"]
    assert len(scripts) == 1, "only our own inline script"
    assert "alert(1)" not in p.script_bodies[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not any(t == "img" for t, _ in p.tags), "HTML from a PDF must stay text"
    assert "&lt;img src=&#34;http://evil.example/x.png&#34; onerror=&#34;alert(2)&#34;&gt;" in html
    assert not any(k.startswith("on") for _, a in p.tags for k in a)


def test_csp_allows_exactly_our_script(example_run: Path) -> None:
    html = render_html(build_context(example_run))
    p = _Collect()
    p.feed(html)
    csp = next(a["content"] for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp
    assert f"'{csp_hash(p.script_bodies[0])}'" in csp


def test_claims_table_rows_link_to_details(example_run: Path) -> None:
    ctx = build_context(example_run)
    html = render_html(ctx)
    rows = re.findall(r'<tr id="row-(claim-[^"]+)"', html)
    assert len(rows) == 9
    for anchor in rows:
        assert f'<section class="claim" id="{anchor}"' in html
        assert f'href="#{anchor}"' in html and f'href="#row-{anchor}"' in html
    for label in ("✔ SUPPORTED", "✘ CONTRADICTED", "? NOT ENOUGH INFO"):
        assert label in html  # the verdict is readable without colour


def test_optional_sections_only_when_present(example_run: Path, example_run_full: Path) -> None:
    plain = render_html(build_context(example_run))
    assert 'id="replication"' not in plain and 'id="reliability"' not in plain and 'id="changes"' not in plain
    full_ctx = build_context(example_run_full)
    from claimscope.report_templates.render import _make_plots

    full_ctx.plots = _make_plots(full_ctx)
    full = render_html(full_ctx)
    assert 'id="replication"' in full and "miniature scale" in full
    assert 'id="reliability"' in full and "SciFact dev" in full
    assert 'id="changes"' in full and "2509.23657v1" in full
    assert "not run &lt;b&gt;here&lt;/b&gt;" in full  # replication notes are escaped too
    assert "&lt;i&gt;p. 2&lt;/i&gt;" in full  # and the reverify reason


def test_html_strict_undefined(example_run: Path) -> None:
    ctx = build_context(example_run)
    with pytest.raises(jinja2.UndefinedError):
        html_env().from_string("{{ ctx.summary.no_such_count }}").render(ctx=ctx)


def test_ids_are_unique_and_every_reference_resolves(example_run_full: Path) -> None:
    """Two inline plots each carried matplotlib's ids (figure_1, axes_1, patch_1, ...): 100+ duplicate ids in one
    page. Every id is unique now, and every #reference (links, SVG url(#...) and href) names an id that exists."""
    import collections

    render_run(example_run_full, ["html"])
    html = (example_run_full / "report.html").read_text(encoding="utf-8")
    p = _Collect()
    p.feed(html)
    ids = collections.Counter(attrs["id"] for _, attrs in p.tags if attrs.get("id"))
    assert [i for i, n in ids.items() if n > 1] == []
    refs = {v[1:] for _, attrs in p.tags for k, v in attrs.items() if k in ("href", "xlink:href") and v
            and v.startswith("#")} | set(re.findall(r"url\(#([^)]+)\)", html))
    assert refs and sorted(r for r in refs if r not in ids) == []
    assert any(r.startswith("reliability-") for r in refs)  # the plots' own references were renamed with their ids
