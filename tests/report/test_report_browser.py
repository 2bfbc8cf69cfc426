"""report.html in headless Chromium (Debian's `chromium`): nine claim rows after scripts, the filter/sort script runs
under the page's CSP, no alert() fires, no request leaves the page, and screenshots are saved.

Screenshots go to tmp_path and to $CLAIMSCOPE_SCREENSHOT_DIR (default: the system temp dir); the test prints where.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from claimscope.report_templates.render import render_run

from .cdp import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (apt-get install -y chromium, or set CLAIMSCOPE_CHROMIUM); .ci/run installs it",
)

ROWS = "document.querySelectorAll('#claims-table tbody tr')"
VISIBLE = f"Array.prototype.filter.call({ROWS}, function (r) {{ return !r.hidden; }}).length"


def _outside(urls: list[str]) -> list[str]:
    return [u for u in urls if not (u.startswith("file://") or u.startswith("data:") or u == "about:blank")]


def _keep(shot: Path, name: str) -> Path:
    out_dir = Path(os.environ.get("CLAIMSCOPE_SCREENSHOT_DIR", tempfile.gettempdir()))
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / name
    shutil.copyfile(shot, dest)
    print(f"screenshot: {dest}")
    return dest


@pytest.fixture
def browser(tmp_path: Path):
    assert CHROMIUM is not None
    with Browser(CHROMIUM, tmp_path / "chromium-profile") as b:
        yield b


def test_report_in_chromium(example_run_full: Path, browser: Browser, tmp_path: Path) -> None:
    render_run(example_run_full, ["html"])
    url = (example_run_full / "report.html").as_uri()
    browser.open(url, width=1280, height=2000)

    assert browser.eval(f"{ROWS}.length") == 9
    assert browser.eval("document.querySelectorAll('section.claim').length") == 9
    # the inline script ran (CSP hash matches) and added its controls
    assert browser.eval("!!document.getElementById('claims-filter')")
    assert browser.eval("document.getElementById('claims-count').textContent") == "9 of 9 claims shown"
    # the injected claim is text, not a script
    assert browser.eval("document.body.innerText.indexOf('<script>alert(1)</script>') !== -1")
    assert browser.eval("document.querySelectorAll('script').length") == 1
    assert browser.eval("document.querySelectorAll('img').length") == 0
    assert browser.eval("document.querySelectorAll('svg').length") == 2

    # filter by verdict, then by "changed"; then sort by confidence
    browser.eval("var s = document.getElementById('claims-verdict'); s.value = 'CONTRADICTED';"
                 "s.dispatchEvent(new Event('change'))")
    assert browser.eval(VISIBLE) == 3
    browser.eval("var s = document.getElementById('claims-verdict'); s.value = '';"
                 "s.dispatchEvent(new Event('change'));"
                 "var c = document.getElementById('claims-changed'); c.click()")
    assert browser.eval(VISIBLE) == 5
    browser.eval("document.getElementById('claims-changed').click();"
                 "document.querySelectorAll('#claims-table th button.sort')[4].click()")
    confs = browser.eval(f"Array.prototype.map.call({ROWS}, function (r) {{ return r.cells[4].textContent; }})")
    assert confs == sorted(confs)
    assert browser.eval(VISIBLE) == 9

    # anchors: a claim number leads to its evidence section
    browser.eval("document.querySelector('#claims-table tbody tr a').click()")
    assert browser.eval("location.hash").startswith("#claim-")

    assert browser.dialogs() == []
    assert browser.errors() == []
    requests = browser.requests()
    assert requests and requests[0] == url
    assert _outside(requests) == []

    browser.eval("location.hash = ''; window.scrollTo(0, 0)")
    shot = browser.screenshot(tmp_path / "report-desktop.png")
    assert shot.stat().st_size > 10_000
    _keep(shot, "claimscope-report-desktop.png")

    browser.open(url, width=390, height=1800, mobile=True)
    assert browser.eval("getComputedStyle(document.querySelector('#claims-table thead')).display") == "none"
    width = browser.eval("document.documentElement.scrollWidth")
    assert width <= 400, f"page scrolls sideways on a phone ({width}px)"
    _keep(browser.screenshot(tmp_path / "report-phone.png"), "claimscope-report-phone.png")


def test_request_check_can_fail(tmp_path: Path, browser: Browser) -> None:
    """The network check above really sees requests: a page that loads from elsewhere is caught."""
    page = tmp_path / "leaky.html"
    page.write_text('<!doctype html><img src="http://claimscope-test.invalid/pixel.png">'
                    '<script>alert("x")</script>', encoding="utf-8")
    browser.open(page.as_uri(), width=800, height=600)
    assert _outside(browser.requests()) == ["http://claimscope-test.invalid/pixel.png"]
    assert browser.dialogs() == ["x"]


def test_long_unbreakable_text_stays_on_a_phone_screen(example_run: Path, browser: Browser, tmp_path: Path) -> None:
    """A PDF's author line ('{jasonphang,iacer.calixto,bowman}@nyu.edu'), a URL or a long token in a quote, claim or
    gap has no break opportunity; the claim details used to run 36 px past a phone's screen."""
    from claimscope.rundir import read_json, read_jsonl, write_json, write_jsonl
    from claimscope.types import Claim, Gap, RunManifest, Verdict

    token = "{jasonphang,iacer.calixto,bowman}@nyu.edu,https://github.com/nyu-mll/jiant/tree/master/examples"
    verdicts = read_jsonl(example_run / "verdicts.jsonl", Verdict)
    ev = verdicts[0].evidence[0].model_copy(update={"quote": f"Jason Phang Clara Vania {token} (2020)."})
    verdicts[0] = verdicts[0].model_copy(update={"evidence": [ev, *verdicts[0].evidence[1:]]})
    write_jsonl(example_run / "verdicts.jsonl", verdicts)
    claims = read_jsonl(example_run / "claims.jsonl", Claim)
    claims[1] = claims[1].model_copy(update={"text": f"Contact {token} for the code."})
    write_jsonl(example_run / "claims.jsonl", claims)
    manifest = read_json(example_run / "run.json", RunManifest)
    manifest.gaps.append(Gap(stage="retrieve", item="x", reason=f"no file {token.replace(',', '_')}"))
    write_json(example_run / "run.json", manifest)
    render_run(example_run, ["html"])

    browser.open((example_run / "report.html").as_uri(), width=390, height=1800, mobile=True)
    assert browser.eval("document.body.innerText.indexOf('bowman}@nyu.edu') !== -1")
    width = browser.eval("document.documentElement.scrollWidth")
    wide = browser.eval("Array.prototype.filter.call(document.querySelectorAll('main *'), function (e) {"
                        " return !e.closest('.scroll, svg') && e.getBoundingClientRect().right > 391; })"
                        ".map(function (e) { return e.tagName + ' ' + e.textContent.slice(0, 40); }).slice(0, 5)")
    assert width <= 400 and wide == [], f"page scrolls sideways on a phone ({width}px): {wide}"
    _keep(browser.screenshot(tmp_path / "report-phone-long.png"), "claimscope-report-phone-long.png")


@pytest.mark.parametrize("width", [1280, 1000])
def test_claims_table_cells_hold_their_content(example_run: Path, browser: Browser, width: int) -> None:
    """No cell of the claims table spills into the next: the '? NOT ENOUGH INFO' badge was 14 px wider than the
    verdict column, and 'not verified 0.26' (a report table's ✗) ran into it on one unbreakable line."""
    from claimscope.rundir import read_jsonl, write_jsonl
    from claimscope.types import AsReported, Claim

    claims = read_jsonl(example_run / "claims.jsonl", Claim)
    claims[0] = claims[0].model_copy(update={"as_reported": AsReported(verdict="not verified", confidence=0.26)})
    write_jsonl(example_run / "claims.jsonl", claims)
    render_run(example_run, ["html"])
    browser.open((example_run / "report.html").as_uri(), width=width, height=1400)
    assert browser.eval(f"{ROWS}[0].getAttribute('data-verdict')") == "NOT_ENOUGH_INFO"
    spill = browser.eval(
        "Array.prototype.filter.call(document.querySelectorAll('#claims-table td'), function (td) {"
        " return td.scrollWidth > td.clientWidth + 1; })"
        ".map(function (td) { return td.getAttribute('data-label') + ': ' + td.textContent.slice(0, 30); })")
    assert spill == []


def test_claims_table_header_stays_in_view(example_run: Path, browser: Browser) -> None:
    """The header cells are position: sticky, but the table's horizontal scroll box was their scroll container, so
    the header scrolled away with the rows; on a screen wide enough for the table it now stays at the top."""
    render_run(example_run, ["html"])
    browser.open((example_run / "report.html").as_uri(), width=1280, height=500)
    browser.eval(f"{ROWS}[8].scrollIntoView()")
    top = browser.eval("document.querySelector('#claims-table th').getBoundingClientRect().top")
    assert browser.eval("window.scrollY") > 1000 and abs(top) < 2, top


def test_back_link_shows_the_row_below_the_sticky_header(example_run: Path, browser: Browser) -> None:
    render_run(example_run, ["html"])
    browser.open((example_run / "report.html").as_uri(), width=1280, height=500)
    browser.eval("document.querySelectorAll('section.claim')[5].querySelector('a[href^=\"#row-\"]').click()")
    assert browser.eval("location.hash").startswith("#row-claim-")
    row_top = browser.eval("document.querySelector(location.hash).getBoundingClientRect().top")
    head_bottom = browser.eval("document.querySelector('#claims-table th').getBoundingClientRect().bottom")
    assert row_top >= head_bottom - 1, (row_top, head_bottom)


def test_no_differ_filter_when_the_input_gives_no_verdicts(example_run: Path, browser: Browser) -> None:
    """Claims from `claimscope extract` or a plain claims list carry no verdict of their own; the 'only where we differ
    from the report' box could then only empty the table ('0 of 9 claims shown'), so it is not offered."""
    from claimscope.rundir import read_jsonl, write_jsonl
    from claimscope.types import Claim

    claims = read_jsonl(example_run / "claims.jsonl", Claim)
    write_jsonl(example_run / "claims.jsonl", [c.model_copy(update={"as_reported": None}) for c in claims])
    render_run(example_run, ["html"])
    browser.open((example_run / "report.html").as_uri(), width=1280, height=800)
    assert browser.eval("!!document.getElementById('claims-verdict')")
    assert browser.eval("document.getElementById('claims-changed') === null")
    browser.eval("var s = document.getElementById('claims-verdict'); s.value = 'CONTRADICTED';"
                 "s.dispatchEvent(new Event('change'))")
    assert browser.eval(VISIBLE) == 3
    assert browser.errors() == []
