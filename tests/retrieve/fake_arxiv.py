"""A loopback stand-in for the arXiv API and PDF host, serving hand-written Atom entries (fixtures/arxiv/*.xml).

`script` queues misbehaviour per path prefix ("/api" or "/pdf/<id>"): each request pops the next action, if any:
  ("status", code, headers)   answer with that status and headers, empty body
  ("truncate", nbytes)        send the full Content-Length but only nbytes of the body, then close
  ("no_length_truncate", n)   send n bytes without a Content-Length
  ("stall", seconds)          wait before answering (client timeouts)
  ("stall_midway", seconds)   send half the body, set `midway`, then wait
  ("html",)                   answer 200 text/html (a landing page instead of a PDF)
  ("ctype", type, body)       answer 200 with this Content-Type and body (None: the real body)
  ("drip", chunk, seconds)    send the body `chunk` bytes at a time, `seconds` apart (a slow but live server)
  ("reset",)                  close the connection with a TCP reset before answering
PDFs are served at /pdf/<id> (the entries' pdf links) and /fallback/pdf/<id> (the URL built from the id).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

FIXTURES = Path(__file__).parent / "fixtures" / "arxiv"
FEED_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>arXiv Query</title>
  <id>http://arxiv.org/api/fake</id>
  <updated>2024-01-01T00:00:00-05:00</updated>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{total}</opensearch:totalResults>
  <opensearch:startIndex xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{start}</opensearch:startIndex>
  <opensearch:itemsPerPage xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{per_page}</opensearch:itemsPerPage>
"""
# order in which the fake "relevance search" returns papers (latest versions only, like arXiv)
SEARCH_ORDER = ["2104.07412", "2005.13013", "1811.01088", "hep-th/9901001"]


class FakeArxiv:
    def __init__(self, pdfs: dict[str, bytes]) -> None:
        self.entries: dict[str, str] = {}  # "2005.13013v1" -> entry xml with {base}
        for f in sorted(FIXTURES.glob("*.xml")):
            self.entries[f.stem.replace("_", "/", 1) if f.stem.startswith("hep") else f.stem] = f.read_text()
        self.pdfs = dict(pdfs)  # "2005.13013v1" -> bytes
        self.script: dict[str, list[tuple]] = defaultdict(list)
        self.requests: list[str] = []
        self.midway = threading.Event()
        self.release = threading.Event()
        self.unused_fixtures = set(self.entries)
        self._server: ThreadingHTTPServer | None = None

    # ---- arXiv semantics ----------------------------------------------------------------------------------------

    def latest(self, arxiv_id: str) -> str | None:
        versions = [k for k in self.entries if k.rsplit("v", 1)[0] == arxiv_id]
        return max(versions, key=lambda k: int(k.rsplit("v", 1)[1])) if versions else None

    def feed(self, query: dict[str, list[str]]) -> bytes:
        id_list = [i for i in (query.get("id_list", [""])[0]).split(",") if i]
        start = int(query.get("start", ["0"])[0])
        per_page = int(query.get("max_results", ["10"])[0])
        if id_list:
            keys = [i if i in self.entries else self.latest(i) for i in id_list]
            keys = [k for k in keys if k]
        else:
            keys = [k for k in (self.latest(i) for i in SEARCH_ORDER) if k]
        page = keys[start : start + per_page]
        self.unused_fixtures -= set(page)
        body = FEED_HEAD.format(total=len(keys), start=start, per_page=len(page))
        body += "".join(self.entries[k].replace("{base}", self.base_url) for k in page)
        return (body + "</feed>\n").encode()

    # ---- server -------------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeArxiv:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append(self.path)
                url = urlparse(self.path)
                if url.path.startswith("/api/"):
                    key, body, ctype = "/api", lambda: fake.feed(parse_qs(url.query)), "application/atom+xml"
                elif url.path.startswith(("/pdf/", "/fallback/pdf/")):
                    pid = url.path.split("/pdf/", 1)[1]
                    if pid not in fake.pdfs:
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    key, body, ctype = url.path, lambda: fake.pdfs[pid], "application/pdf"
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                action = fake.script[key].pop(0) if fake.script.get(key) else None
                self.respond(action, body(), ctype)

            def respond(self, action: tuple | None, data: bytes, ctype: str) -> None:
                kind = action[0] if action else None
                if kind == "status":
                    self.send_response(action[1])
                    for k, v in action[2].items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if kind == "stall":
                    fake.release.wait(action[1])
                if kind == "html":
                    data, ctype = b"<html><body>Please verify you are a human</body></html>", "text/html"
                if kind == "reset":
                    import socket
                    import struct

                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if kind == "ctype":
                    ctype = action[1]
                    data = data if action[2] is None else action[2]
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                if kind != "no_length_truncate":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if kind in ("truncate", "no_length_truncate"):
                    self.wfile.write(data[: action[1]])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if kind == "drip":
                    for i in range(0, len(data), action[1]):
                        self.wfile.write(data[i : i + action[1]])
                        self.wfile.flush()
                        time.sleep(action[2])
                    return
                if kind == "stall_midway":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    fake.midway.set()
                    fake.release.wait(action[1])
                    return
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            time.sleep(0)


class FakeClock:
    """A clock that only moves when something sleeps on it; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
