"""Issue 9.3 end to end: whatever the rewriter lets through for a consented partner, whatever
the fetch vector, is in the ledger (one-body and streamed responses); without consent nothing
of it goes out and nothing is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.asgi_helpers import cookie_for, html_app, http_scope, make_gate, run
from tests.test_disclosure import VIDEO_PARTNER, rows

VECTORS = {
    "svg-title-iframe": b'<svg><title><iframe src="https://www.youtube.com/embed/x"></iframe></title></svg>',
    "svg-style-breakout": b'<svg><style><img src="https://www.youtube.com/i.png"></style></svg>',
    "noscript-plaintext": b'<noscript><plaintext></noscript><embed src="https://www.youtube.com/e">',
    "video-poster": b'<video poster="https://www.youtube.com/p.jpg"></video>',
    "style-import": b'<style>@import "https://www.youtube.com/s.css";</style>',
    "style-attr": b'<div style="background:url(//www.youtube.com/b.png)"></div>',
    "meta-refresh": b'<meta http-equiv="refresh" content="30;url=https://www.youtube.com/">',
    "srcdoc": b'<iframe srcdoc="&lt;img src=https://www&period;youtube&period;com/i&gt;"></iframe>',
    "data-iframe": b'<iframe src="data:text/html,%3Cimg%20src%3D//www.youtube.com/i%3E"></iframe>',
    "svg-image": b'<svg><image href="https://www.youtube.com/i.png"/></svg>',
}


def page(vector: bytes) -> bytes:
    return b"<!DOCTYPE html><html><head></head><body><p>x</p>" + vector + b"</body></html>"


@pytest.mark.parametrize("streamed", [False, True], ids=["one-body", "streamed"])
@pytest.mark.parametrize("name", sorted(VECTORS))
def test_rewrite_consented_vector_has_its_ledger_row(tmp_path: Path, name: str,
                                                      streamed: bool) -> None:
    doc = page(VECTORS[name])
    chunks = [doc[: len(doc) // 2], doc[len(doc) // 2 :]] if streamed else [doc]
    gate = make_gate(html_app(chunks), tmp_path, partners=VIDEO_PARTNER)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"social"}))))
    assert VECTORS[name] in out.body
    assert "youtube" in {r["partner"] for r in rows(tmp_path / "ledger.sqlite3")}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_rewrite_vector_without_consent_is_neither_sent_nor_recorded(tmp_path: Path,
                                                                     name: str) -> None:
    gate = make_gate(html_app([page(VECTORS[name])]), tmp_path, partners=VIDEO_PARTNER)
    out = asyncio.run(run(gate, http_scope()))
    assert VECTORS[name] not in out.body
    assert rows(tmp_path / "ledger.sqlite3") == []
