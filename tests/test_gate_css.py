"""gate/css.py: the site's own style sheets read by the visitor's consent.

The reader (CssGate) against a css-syntax-3 tokenizer (tinycss2) on generated sheets: what
its output fetches names no refused partner, whatever the spelling (escapes, comments,
strings, nesting, case); every chunking gives the same bytes; with every partner allowed a
readable sheet leaves byte for byte and every partner tinycss2 sees fetched is reported for
the ledger. Then the responder: headers (a sheet that names nobody stays cacheable; one that
names a partner is private, without validators), the ledger row before a consented sheet,
streaming, gzip, HEAD, untyped bodies, encodings it cannot read."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

import pytest
import tinycss2
from hypothesis import example, given, settings
from hypothesis import strategies as st

from middleware.gate.css import BLOCKED_AT, BLOCKED_FUNCTION, CssGate
from middleware.gate.start import start_kind_py
from middleware.html.partners import PartnerLookup
from middleware.sniff import BodyKind
from tests.asgi_helpers import cookie_for, html_app, http_scope, make_gate, run
from tests.support.budget import examples
from tests.test_disclosure import VIDEO_PARTNER, rows
from tests.test_rewrite import MATCHER, make_plan

BLOCKED = make_plan()
ALLOWED = make_plan(allowed="ads yt fb")
ADS_ONLY = make_plan(allowed="ads")


def read(sheet: bytes, plan: Any = BLOCKED, **kw: Any) -> tuple[bytes, frozenset[str], CssGate]:
    """One-chunk output, checked equal to every split in two and to small chunks."""
    gate = CssGate(plan, **kw)
    whole = gate.feed(sheet) + gate.finish()
    enabled = gate.take_enabled()
    for cut in range(len(sheet) + 1):
        two = CssGate(plan, **kw)
        assert two.feed(sheet[:cut]) + two.feed(sheet[cut:]) + two.finish() == whole, cut
    for size in (1, 2, 3, 7):
        small = CssGate(plan, **kw)
        out = b"".join(small.feed(sheet[i:i + size]) for i in range(0, len(sheet), size))
        assert out + small.finish() == whole, size
        assert small.take_enabled() == enabled
    return whole, enabled, gate


# --- what a browser fetches, read by tinycss2 -------------------------------------------------

_URL_FUNCTIONS = {"url", "src"}
_SET_FUNCTIONS = {"image-set", "-webkit-image-set"}


def fetched(sheet: bytes) -> list[str]:
    """Every URL a css-syntax-3 reading of ``sheet`` may fetch: url tokens, url()/src()
    strings, image-set() strings, the string after @import."""
    found: list[str] = []

    def walk(tokens: list[Any]) -> None:
        for i, t in enumerate(tokens):
            if t.type == "url":
                found.append(t.value)
            elif t.type == "function":
                args = [a for a in t.arguments if a.type not in ("whitespace", "comment")]
                if t.lower_name in _URL_FUNCTIONS and args and args[0].type == "string":
                    found.append(args[0].value)
                if t.lower_name in _SET_FUNCTIONS:
                    found.extend(a.value for a in args if a.type == "string")
                walk(t.arguments)
            elif t.type in ("() block", "[] block", "{} block"):
                walk(t.content)
            elif t.type == "at-keyword" and t.lower_value == "import":
                rest = [a for a in tokens[i + 1:] if a.type not in ("whitespace", "comment")]
                if rest and rest[0].type == "string":
                    found.append(rest[0].value)

    walk(tinycss2.parse_component_value_list(sheet.decode("latin-1")))
    return found


def partners_fetched(sheet: bytes) -> set[str]:
    lookup = PartnerLookup(MATCHER)
    return {p for p in (lookup.partner(u, set()) for u in fetched(sheet)) if p is not None}


# --- exact outputs -----------------------------------------------------------------------------

@pytest.mark.parametrize(("sheet", "want"), [
    (b'@import url(//x.doubleclick.net/a.css);',
     b'@-consent-blocked-import url-consent-blocked(//x.doubleclick.net/a.css);'),
    (b'a{background:url("https://www.youtube.com/i.png")}',
     b'a{background:url-consent-blocked("https://www.youtube.com/i.png")}'),
    (b'a{b:image-set("/own.png" 1x, "//x.doubleclick.net/b.png" 2x)}',
     b'a{b:image-set-consent-blocked("/own.png" 1x, "//x.doubleclick.net/b.png" 2x)}'),
    (b'a{b:u\\72l(//www\\2eyoutube.com/e)}', b'a{b:u\\72l-consent-blocked(//www\\2eyoutube.com/e)}'),
    (b'@\\69mport "//x.doubleclick.net/e.css";', b'@-consent-blocked-\\69mport "//x.doubleclick.net/e.css";'),
    (b'@import/**/"//x.doubleclick.net/c.css";', b'@-consent-blocked-import/**/"//x.doubleclick.net/c.css";'),
    # a string with a ) in it does not end the window early
    (b'a{b:image-set("x)" 1x, "//x.doubleclick.net/q" 2x)}',
     b'a{b:image-set-consent-blocked("x)" 1x, "//x.doubleclick.net/q" 2x)}'),
    # nothing a partner's: byte for byte
    (b'a{color:rgb(0,0,0);background:url(/own.png) url(//cdn.example/c.png)}@media (x){}',
     b'a{color:rgb(0,0,0);background:url(/own.png) url(//cdn.example/c.png)}@media (x){}'),
])
def test_each_fetch_of_a_refused_partner_is_respelled(sheet: bytes, want: bytes) -> None:
    out, enabled, gate = read(sheet)
    assert out == want
    assert enabled == frozenset()
    assert partners_fetched(out) == set()
    assert gate.named == (want != sheet)


def test_a_consented_partner_is_kept_and_reported() -> None:
    sheet = b'@import "//x.doubleclick.net/a.css";a{b:url(//www.youtube.com/i)}'
    out, enabled, _ = read(sheet, ADS_ONLY)
    assert out == b'@import "//x.doubleclick.net/a.css";a{b:url-consent-blocked(//www.youtube.com/i)}'
    assert enabled == {"ads"}
    out, enabled, _ = read(sheet, ALLOWED)
    assert out == sheet and enabled == {"ads", "yt"}


def test_a_window_longer_than_the_bound_is_unreadable_in_every_chunking() -> None:
    sheet = b"a{b:url(" + b" " * 40 + b"/own.png)}c{d:url(/x)}"
    out, _, gate = read(sheet, ALLOWED, window=32)
    assert out.startswith(b"a{b:url-consent-blocked(") and out.endswith(b"c{d:url(/x)}")
    assert gate.named
    out, _, _ = read(sheet, ALLOWED, window=64)
    assert out == sheet


@pytest.mark.parametrize(("sheet", "charset"), [
    (b"\xff\xfe" + "a{b:url(//x.doubleclick.net/a)}".encode("utf-16-le"), None),
    (b"\xfe\xff" + "a{}".encode("utf-16-be"), "utf-8"),
    (b'@charset "ISO-2022-JP"; a{b:url(/x)}', None),
    (b"a{b:url(/x)}", "utf-16"),
    (b"a{b:url(/x)}", " ISO-2022-JP"),
])
def test_a_sheet_in_an_encoding_read_otherwise_is_dropped(sheet: bytes, charset: str | None) -> None:
    out, _, gate = read(sheet, ALLOWED, charset=charset)
    assert out == b"" and gate.dropped is not None and gate.named


def test_a_double_byte_second_byte_inside_a_window_is_unreadable() -> None:
    """Shift_JIS '表' is 0x95 0x5C: read as a byte, the backslash escapes the quote after it
    and the string hides the partner's; read in Shift_JIS (the page's encoding, when the
    sheet has no label) the quote closes it. Unreadable, so respelled; with a UTF-8 label
    the bytes are UTF-8 and the window is read."""
    sheet = b'a{b:image-set("\x95\\" 1x, "//x.doubleclick.net/sj" 2x)}'
    out, _, _ = read(sheet, ALLOWED)
    assert out.startswith(b"a{b:image-set-consent-blocked(")
    out, _, _ = read(b'a{b:image-set("\xc3\xa9" 1x)}', ALLOWED)
    assert out == b'a{b:image-set("\xc3\xa9" 1x)}'


# --- generated sheets against tinycss2 ----------------------------------------------------------

URLS = ["//x.doubleclick.net/a", "https://pagead2.googlesyndication.com/p", "HTTPS://WWW.YOUTUBE.COM/Y",
        "\\2f\\2fx.doubleclick.net/e", "//x.doubleclick\\.net/d", "//x.doubleclick\\2e net/h",
        "//www.youtube.com:443/z", "/own.png", "//cdn.example/c.png", "own.png", "http:\\\\x.doubleclick.net\\b"]
WRAPS = ["url({u})", 'url("{u}")', "url( '{u}' )", "u\\72l({u})", "URL({u})", 'image-set("{u}" 1x)',
         "-webkit-image-set(url({u}) 1x, '{u}' 2x)", '@import "{u}";', "@import url({u}) screen;",
         "@IMPORT '{u}';", '@\\69mport "{u}";', '@import/**/"{u}";', 'src("{u}")',
         'content:"url({u})"', "/* url({u}) */", "cross-fade(url({u}), url(/o.png))",
         'image-set("x)" 1x, "{u}" 2x)', "url(/*{u}*/)", 'image-set(\\) "{u}" 1x)',
         'image-set("a\\"b)" 1x, "{u}" 2x)', 'image-set(( ] ) "{u}" 1x)', "image-set({{ ) }} '{u}')"]
NOISE = ["a{", "}", ";", "/* c ( */", '"str ( "', "'x)'", "(", ")", "[", "]", "{", "\\", " ", "\n", "\\)",
         "calc(1px + (2px))", "rgb(0,0,0)", "--v:", "var(--v)", "@media (x){", ":not(.a)", "/*", "*/",
         '"', "'", "@", "b:"]
pieces = st.one_of(st.builds(lambda w, u: w.format(u=u), st.sampled_from(WRAPS), st.sampled_from(URLS)),
                   st.sampled_from(NOISE))
sheets = st.lists(pieces, max_size=14).map(lambda p: "".join(p).encode("latin-1"))


@settings(max_examples=examples(600), deadline=None)
@given(sheets, st.lists(st.integers(0, 400), max_size=6), st.sampled_from([None, "utf-8"]))
@example(b'a{b:url(//x.doubleclick.net/a)}', [5], None)
@example(b'@import "//x.doubleclick.net/a";', [1, 2, 3], None)
def test_generated_sheets_fetch_no_refused_partner(sheet: bytes, cuts: list[int],
                                                   charset: str | None) -> None:
    gate = CssGate(BLOCKED, charset)
    whole = gate.feed(sheet) + gate.finish()
    # every chunking gives the same bytes
    chunked = CssGate(BLOCKED, charset)
    parts, last = [], 0
    for cut in sorted(c for c in cuts if c <= len(sheet)):
        parts.append(chunked.feed(sheet[last:cut]))
        last = cut
    assert b"".join(parts) + chunked.feed(sheet[last:]) + chunked.finish() == whole
    # what the output fetches names no partner (none is allowed)
    assert partners_fetched(whole) == set()
    # with every partner allowed: byte for byte, and every partner fetched is reported
    allowed = CssGate(ALLOWED, charset)
    kept = allowed.feed(sheet) + allowed.finish()
    assert kept == sheet
    assert partners_fetched(sheet) <= allowed.take_enabled()


# --- the responder ------------------------------------------------------------------------------

SHEET = b'@import "//www.youtube.com/a.css";\nbody{background:url(/own.png)}'
INERT = b'@-consent-blocked-import "//www.youtube.com/a.css";\nbody{background:url(/own.png)}'
CACHED = [(b"content-type", b"text/css"), (b"cache-control", b"max-age=3600"), (b"etag", b'"v1"'),
          (b"content-length", b"%d" % len(SHEET))]


def _gate(tmp_path: Path, chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return make_gate(html_app(chunks, headers=headers if headers is not None else CACHED), tmp_path,
                     partners=VIDEO_PARTNER)


def test_start_kind_reads_style_sheets() -> None:
    assert start_kind_py([(b"content-type", b"text/css; charset=utf-8")]) == (BodyKind.CSS, False)
    assert start_kind_py([(b"content-type", b"application/json")])[0] is BodyKind.OTHER


def test_a_sheet_that_names_nobody_leaves_as_sent(tmp_path: Path) -> None:
    body = b"body{background:url(/own.png) url(//cdn.example/x.png)}"
    headers = [*CACHED[:3], (b"content-length", b"%d" % len(body))]
    out = asyncio.run(run(_gate(tmp_path, [body], headers), http_scope("/s.css")))
    assert out.body == body
    assert out.start["headers"] == headers


def test_a_sheet_without_consent_is_respelled_private_and_not_recorded(tmp_path: Path) -> None:
    out = asyncio.run(run(_gate(tmp_path, [SHEET]), http_scope("/s.css")))
    assert out.body == INERT
    assert out.header(b"content-length") == [b"%d" % len(INERT)]
    assert out.header(b"etag") == []
    assert out.header(b"cache-control")[0].startswith(b"private")
    assert b"cookie" in out.header(b"vary")[0].lower()
    assert out.header(b"content-security-policy") == []  # (a CSP on a sheet governs nothing)
    assert rows(tmp_path / "ledger.sqlite3") == []


@pytest.mark.parametrize("streamed", [False, True], ids=["one-body", "streamed"])
def test_a_consented_sheet_is_recorded_before_it_leaves(tmp_path: Path, streamed: bool) -> None:
    chunks = [SHEET[:9], SHEET[9:30], SHEET[30:]] if streamed else [SHEET]
    gate = _gate(tmp_path, chunks)
    log: list[str] = []
    out = asyncio.run(run(gate, http_scope("/s.css", cookie=cookie_for(gate, {"social"})), log))
    assert out.body == SHEET
    recorded = rows(tmp_path / "ledger.sqlite3")
    assert [(r["path"], r["partner"]) for r in recorded] == [("/s.css", "youtube")]
    assert out.header(b"cache-control")[0].startswith(b"private") and out.header(b"etag") == []
    if streamed:
        assert out.header(b"content-length") == []


def test_a_streamed_sheet_equals_the_one_body_sheet(tmp_path: Path) -> None:
    chunks = [SHEET[i:i + 5] for i in range(0, len(SHEET), 5)]
    out = asyncio.run(run(_gate(tmp_path, chunks, [(b"content-type", b"text/css")]), http_scope("/s.css")))
    assert out.body == INERT and len(out.bodies) > 2
    assert out.header(b"cache-control")[0].startswith(b"private")


def test_a_gzip_sheet_is_decoded_and_read(tmp_path: Path) -> None:
    headers = [(b"content-type", b"text/css"), (b"content-encoding", b"gzip")]
    out = asyncio.run(run(_gate(tmp_path, [gzip.compress(SHEET)], headers), http_scope("/s.css")))
    assert out.body == INERT and out.header(b"content-encoding") == []


def test_head_of_a_sheet_is_private(tmp_path: Path) -> None:
    out = asyncio.run(run(_gate(tmp_path, [b""]), http_scope("/s.css", method="HEAD")))
    assert out.header(b"cache-control")[0].startswith(b"private") and out.header(b"etag") == []


def test_an_untyped_body_is_read_as_a_sheet_and_a_binary_one_only_for_partners(tmp_path: Path) -> None:
    """Chromium applies a sheet with no Content-Type (tests/browser/test_redteam_css.py)."""
    out = asyncio.run(run(_gate(tmp_path, [SHEET], []), http_scope("/s")))
    assert out.body == INERT
    # a binary body whose windows cannot be read (a long one) is not broken ...
    image = b"\x89PNG\r\n\x1a\n\x00(" + b"\x01" * 70000 + b"\\[\xff@"
    out = asyncio.run(run(_gate(tmp_path, [image], []), http_scope("/i")))
    assert out.body == image
    # ... but one that names a partner is respelled all the same
    out = asyncio.run(run(_gate(tmp_path, [b"\x00\x01url(//www.youtube.com/x)"], []), http_scope("/j")))
    assert out.body == b"\x00\x01url" + BLOCKED_FUNCTION + b"(//www.youtube.com/x)"


def test_a_utf16_sheet_leaves_empty(tmp_path: Path) -> None:
    body = b"\xff\xfe" + "a{b:url(//www.youtube.com/x)}".encode("utf-16-le")
    out = asyncio.run(run(_gate(tmp_path, [body], [(b"content-type", b"text/css")]), http_scope("/s.css")))
    assert out.body == b""
    assert BLOCKED_AT  # (both respellings are public names)
