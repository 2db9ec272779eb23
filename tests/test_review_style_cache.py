"""A response the gate reads as a style sheet only because the request asked for one (its
own type says HTML, text, JSON ...) must never be stored by a cache (review3, 8433c30).

gate/css.py reads such a body as CSS: an HTML page's ``<img>`` and ``<script src>`` of a
refused partner are no CSS fetches, so they leave as the site wrote them, and a sheet that
names no partner in CSS terms left with the app's own headers (``Cache-Control: public,
max-age=600``, no Vary, no CSP). One ``curl -H 'Sec-Fetch-Dest: style' /article`` then put
the page, ungated, into a shared cache keyed by its URL, for every later visitor's document
request (and a browser that fetched it as a sheet kept it for its own navigation). Such a
response now goes out ``no-store``, varying on the headers that chose the reading, behind the
enforced no-partner CSP (were it ever shown as a document).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from middleware.gate.css import BLOCKED_FUNCTION
from tests.asgi_helpers import enforced_no_partner, html_app, http_scope, make_gate, run

AD = b"https://pagead2.googlesyndication.com"
PAGE = (b"<!doctype html><html><head><title>Article</title></head><body><p>Text</p>"
        b'<img src="' + AD + b'/pagead/pixel.gif"><script src="' + AD
        + b'/pagead/js/adsbygoogle.js"></script></body></html>')
SHEET = b"body { background: url(" + AD + b"/b.gif) }\n.own { color: green }\n"
ASKS = [[(b"sec-fetch-dest", b"style")], [(b"accept", b"text/css,*/*;q=0.1")]]
CACHEABLE = [(b"cache-control", b"public, max-age=600"), (b"etag", b'"v1"'),
             (b"last-modified", b"Tue, 01 Dec 2026 00:00:00 GMT")]


def _serve(tmp_path: Path, body: bytes, content_type: bytes, ask: list[tuple[bytes, bytes]],
           extra: list[tuple[bytes, bytes]] | None = None):  # type: ignore[no-untyped-def]
    headers = [(b"content-type", content_type), *CACHEABLE, *(extra or [])]
    gate = make_gate(html_app((body,), headers=headers), tmp_path)
    return asyncio.run(run(gate, http_scope("/article", headers=ask)))


def _stored_by_no_cache(out) -> bool:  # type: ignore[no-untyped-def]
    cache_control = b",".join(out.header(b"cache-control")).lower()
    vary = b",".join(out.header(b"vary")).lower()
    return (b"no-store" in cache_control and b"public" not in cache_control
            and b"sec-fetch-dest" in vary and b"accept" in vary.replace(b"accept-language", b"")
            and not out.header(b"etag") and not out.header(b"last-modified"))


@pytest.mark.parametrize("ask", ASKS)
@pytest.mark.parametrize("content_type", [b"text/html; charset=utf-8", b"text/plain",
                                          b"application/json", b"application/xhtml+xml"])
def test_a_page_read_as_a_sheet_is_stored_by_no_cache(tmp_path: Path, content_type: bytes,
                                                      ask: list[tuple[bytes, bytes]]) -> None:
    out = _serve(tmp_path, PAGE, content_type, ask)
    assert out.start["status"] == 200
    assert _stored_by_no_cache(out), out.start["headers"]
    assert enforced_no_partner(out), out.start["headers"]


@pytest.mark.parametrize("ask", ASKS)
def test_a_sheet_naming_a_partner_read_by_request_is_stored_by_no_cache(
        tmp_path: Path, ask: list[tuple[bytes, bytes]]) -> None:
    out = _serve(tmp_path, SHEET, b"text/plain", ask)
    assert BLOCKED_FUNCTION in out.body
    assert _stored_by_no_cache(out)


def test_a_page_asked_for_as_a_document_is_gated_as_before(tmp_path: Path) -> None:
    out = _serve(tmp_path, PAGE, b"text/html; charset=utf-8", [(b"sec-fetch-dest", b"document")])
    assert b'<img src="' + AD not in out.body
    assert b"private" in b",".join(out.header(b"cache-control"))


@pytest.mark.parametrize("ask", ASKS)
def test_a_real_style_sheet_keeps_its_caching(tmp_path: Path, ask: list[tuple[bytes, bytes]]) -> None:
    """A text/css answer is read as before: one that names no partner stays cacheable."""
    own = b".own { color: green }\n"
    out = _serve(tmp_path, own, b"text/css", ask)
    assert out.body == own
    assert out.header(b"cache-control") == [b"public, max-age=600"]
    assert out.header(b"etag") == [b'"v1"']


@pytest.mark.parametrize("ask", ASKS)
def test_upper_case_names_and_a_name_without_letters(tmp_path: Path,
                                                     ask: list[tuple[bytes, bytes]]) -> None:
    """Django's ``Content-Type`` and ``Cache-Control``, and a header whose name has no letter
    (start_kind answers None even after lower-casing: the body was sniffed, and an HTML one
    then rewritten as HTML, its CSS left as text): still read as a sheet, stored by no cache."""
    headers = [(b"Content-Type", b"text/html; charset=utf-8"),
               (b"Cache-Control", b"public, max-age=600"), (b"1", b"x")]
    gate = make_gate(html_app((b"<p>x</p>" + SHEET,), headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope("/article", headers=ask)))
    assert BLOCKED_FUNCTION in out.body
    assert _stored_by_no_cache(out), out.start["headers"]
