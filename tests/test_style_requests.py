"""A request for a style sheet (``Sec-Fetch-Dest: style``, or ``Accept: text/css…`` without
any Sec-Fetch-Dest) gets its answer read as a sheet (gate/css.py) whatever its Content-Type
(red-team round 4). A quirks-mode page applies a same-origin sheet of any type: as text/plain,
text/html, JSON, JavaScript, XML or an image, Chromium 156 fetched the ``@import`` and
``url()`` partners it named through the gate with the CSP off or report-only
(tests/browser/test_redteam_round4.py); the gate read only text/css (and untyped bodies)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from middleware.gate.css import BLOCKED_AT, BLOCKED_FUNCTION
from tests.asgi_helpers import cookie_for, html_app, http_scope, make_gate, run
from tests.test_disclosure import rows

AD = b"https://pagead2.googlesyndication.com"
SHEET = (b"@import url(" + AD + b"/i.css);\nbody { background: url(" + AD + b"/b.gif) }\n"
         b".own { color: green }\n")
#: The sheet with both fetches inert (as gate/css.py spells them).
INERT = (b"@" + BLOCKED_AT + b"import url" + BLOCKED_FUNCTION + b"(" + AD + b"/i.css);\n"
         b"body { background: url" + BLOCKED_FUNCTION + b"(" + AD + b"/b.gif) }\n"
         b".own { color: green }\n")
STYLE = [(b"sec-fetch-dest", b"style"), (b"accept", b"text/css,*/*;q=0.1")]
TYPES = [b"text/plain", b"text/html; charset=utf-8", b"application/json", b"text/javascript",
         b"application/xml", b"image/gif", b"application/xhtml+xml", None]


def _serve(tmp_path: Path, content_type: bytes | None, headers: list[tuple[bytes, bytes]],
           *, chunks: tuple[bytes, ...] = (SHEET,), method: str = "GET", cookie: str | None = None,
           status: int = 200):  # type: ignore[no-untyped-def]
    app_headers = [] if content_type is None else [(b"content-type", content_type)]
    gate = make_gate(html_app(chunks, headers=app_headers, status=status), tmp_path)
    return gate, asyncio.run(run(gate, http_scope("/s.txt", method=method, headers=headers,
                                                  cookie=cookie)))


@pytest.mark.parametrize("content_type", TYPES)
@pytest.mark.parametrize("ask", [STYLE, STYLE[:1], STYLE[1:], [(b"sec-fetch-dest", b" Style\t")]])
def test_a_sheet_request_is_read_as_a_sheet_whatever_the_type(
        tmp_path: Path, content_type: bytes | None, ask: list[tuple[bytes, bytes]]) -> None:
    _, out = _serve(tmp_path, content_type, ask)
    assert out.body == INERT
    assert out.start["status"] == 200
    assert b"private" in b" ".join(out.header(b"cache-control"))


@pytest.mark.parametrize("content_type", [b"text/plain", b"application/json", b"image/gif"])
@pytest.mark.parametrize("headers", [[], [(b"sec-fetch-dest", b"document")],
                                     [(b"sec-fetch-dest", b"empty"), (b"accept", b"text/css")],
                                     [(b"accept", b"text/html,*/*")]])
def test_any_other_request_passes_as_before(tmp_path: Path, content_type: bytes,
                                            headers: list[tuple[bytes, bytes]]) -> None:
    _, out = _serve(tmp_path, content_type, headers)
    assert out.body == SHEET and out.header(b"content-type") == [content_type]


def test_streamed_and_head_and_no_body(tmp_path: Path) -> None:
    _, out = _serve(tmp_path, b"text/plain", STYLE, chunks=(SHEET[:9], SHEET[9:30], SHEET[30:]))
    assert out.body == INERT
    _, head = _serve(tmp_path / "h", b"text/plain", STYLE, chunks=(b"",), method="HEAD")
    assert head.body == b"" and head.start["status"] == 200
    _, empty = _serve(tmp_path / "e", b"text/plain", STYLE, chunks=(b"",), status=304)
    assert empty.start["status"] == 304 and empty.body == b""


def test_with_consent_the_sheet_goes_out_as_written_after_its_ledger_row(tmp_path: Path) -> None:
    gate, _ = _serve(tmp_path, b"text/plain", STYLE)
    cookie = cookie_for(gate, {"ads"})
    gate2, out = _serve(tmp_path, b"text/plain", STYLE, cookie=cookie)
    assert out.body == SHEET
    ledger = Path(gate2.config.ledger.path)
    assert ("/s.txt", "adsense") in {(r["path"], r["partner"]) for r in rows(ledger)}
