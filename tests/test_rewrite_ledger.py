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


def _awaiting(task: asyncio.Task[object]) -> list[str]:
    """The coroutines a suspended task is waiting through, outermost first."""
    names: list[str] = []
    aw: object = task.get_coro()
    while aw is not None:
        code = getattr(aw, "cr_code", None)
        if code is None:  # the future at the bottom
            names.append(type(aw).__name__)
            break
        names.append(code.co_qualname)
        aw = getattr(aw, "cr_await", None)
    return names


def test_a_page_waiting_for_its_record_is_suspended_through_the_fewest_coroutines(
        tmp_path: Path) -> None:
    """A one-body page with a consented partner waits for the ledger's commit with its whole
    coroutine chain suspended, and every coroutine in it is suspended and resumed again:
    ours go straight from ``_send`` to the rewrite (not through ``_decide`` and ``_act``).
    With the real writer process; the third view is a remembered rewrite."""
    doc = page(VECTORS["video-poster"])
    gate = make_gate(html_app([doc]), tmp_path, partners=VIDEO_PARTNER)
    scope = http_scope(cookie=cookie_for(gate, {"social"}))

    async def main() -> list[list[str]]:
        chains = []
        for _ in range(3):
            task = asyncio.ensure_future(run(gate, dict(scope)))
            chain: list[str] = []
            while not task.done() and "ProcessWriter.write" not in chain:
                await asyncio.sleep(0)  # one loop iteration: the frame cannot be acknowledged yet
                chain = _awaiting(task)
            out = await task
            assert VECTORS["video-poster"] in out.body
            chains.append(chain)
        return chains

    chains = asyncio.run(main())
    for chain in chains:
        assert "ProcessWriter.write" in chain, chain
        ours = chain[chain.index("HtmlResponder._send"):chain.index("ProcessWriter.write")]
        assert "HtmlResponder._decide" not in ours and "HtmlResponder._act" not in ours, ours
    assert chains[-1][chains[-1].index("HtmlResponder._send"):] == [
        "HtmlResponder._send", "HtmlResponder._rewrite_first", "HtmlResponder._rewrite_whole",
        "HtmlResponder._disclose", "Discloser.disclose", "ProcessWriter.write", "FutureIter"]
    assert len({r["request_id"] for r in rows(tmp_path / "ledger.sqlite3")}) == 3
