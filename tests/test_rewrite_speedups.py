"""The C skip scan (middleware/_speedups.c) gives exactly what the regex it replaces gives:
``skip_end(low, pos) == _SKIP_RE.match(low, pos).end()`` for any bytes and any position.

Adversarial HTML-ish input: tags built from the tokenizer's edge cases (quoted/unquoted values
holding ``< > " ' / =``, names that extend or contain the interesting ones, ``data-consent``,
URL-ish bytes ``: \\ & //``), random token soup, NUL and non-ASCII bytes, buffers cut off
anywhere, and every start position (out of range ones included). The rewriter's own suites run
with the extension on and with ``CONSENT_GATE_PURE_PYTHON=1``; see docs/rewriter.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from middleware import rewrite
from middleware.html.tokenizer import splice_py
from tests.support.budget import examples
from tests.support.guard_page import guarded_windows

try:
    from middleware import _speedups
except ImportError:  # pragma: no cover - a pure-Python install
    _speedups = None  # type: ignore[assignment]

if _speedups is None:
    # CI has a compiler: there a missing extension is a build regression, not a skip.
    if os.environ.get("CI"):
        pytest.fail("middleware._speedups was not built (pip install -e . should compile it)",
                    pytrace=False)
    pytest.skip("middleware._speedups not built (pure-Python install)", allow_module_level=True)

CORPUS = Path(__file__).parent / "corpus"
SKIP = rewrite._SKIP_RE


def regex_end(buf: bytes, pos: int) -> int:
    m = SKIP.match(buf, pos)
    assert m is not None
    return m.end()


def check_all_positions(buf: bytes) -> None:
    for pos in range(-2, len(buf) + 3):
        assert _speedups.skip_end(buf, pos) == regex_end(buf, pos), (buf, pos)


# --- the generator ---------------------------------------------------------------------------

NAMES = [*rewrite._NAME_SET, "scripts", "imgx", "im", "i", "iframes", "linkx", "bodyx", "heads",
         "noscrip", "noscripts", "a", "div", "p", "x-img", "img-x", "svg", "math", "b", "br",
         "IMG", "Script", "iMg", "DIV", "a1", "z", "\u00e9", "img\x00", "scr<ipt", 'd"iv',
         "div=", "i'mg"]
ATTR_NAMES = ["src", "href", "srcset", "data-consent", "data-consent-src", "data-consentx",
              "xdata-consent", "data-consen", "Data-Consent", "DATA-CONSENT", "d", "da", "data",
              "type", "rel", "class", "=", "==", "=x", "a=", '"', "'", '"a"', "<", "<!--", "a<b",
              "on", "title", "\u00e9", "\x00", "x", "/", "data-consent/",
              # attributes that fetch on any element: quiet values only
              "style", "STYLE", "styles", "xstyle", "background", "backgroun", "ping", "pings",
              "attributionsrc", "style=", "ping/"]
VALUE_BITS = ["", "a", "x", "/", "//", "/ /", "/\t/", "/\n/", "/\r/", "/\f/", "/x/", ":", "http:",
              "https://ads.example", "\\", "\\\\", "&", "&amp;", "&#47;", "<", ">", "=", '"', "'",
              " ", "\t", "\n", "\f", "\r", "\v", "<!--", "-->", "<script>", "</script>",
              "<img src=x>", "data-consent", "\x00", "\u00e9", "\xff", "?", "!", "-", "1x, 2x",
              "(", "url(", "url(//x)", "color:red", "\\28"]
WS = [" ", "\t", "\n", "\f", "\r", "  ", "/", " / ", "//", "\v", "", "\n\t"]
SOUP = ["<", ">", "</", "/>", "<!", "<!--", "-->", "--!>", "<?", "<!DOCTYPE html>", "</>",
        "< ", "<<", "<1", "<A", "<Img", "</ x>", '"', "'", "=", "/", " ", "\t", "\n", "\f", "\r",
        "\v", "\x00", "\xff", "\u00e9", "\u0130", "\u212a", "text", "&amp;", "&", ":", "\\",
        "//", "data-consent", "src=", "http://x", "a", "z", "-", "!", "?",
        *(f"<{n}" for n in rewrite._NAME_SET), *(f"</{n}" for n in rewrite._NAME_SET),
        "<scripts", "<imgx", "<iframe", "</noscripts", "</bodyx", "</headx", "</div>",
        "<div>", "<p title='<'>", '<a b=x"y c="z>', "<img src=//x>", "<img alt=a/b>"]


def _text(parts: Iterable[str]) -> str:
    return "".join(parts)


values = st.lists(st.sampled_from(VALUE_BITS), max_size=4).map(_text)
value_part = st.one_of(
    st.just(""),  # no value
    st.tuples(st.sampled_from(["", " ", "\t", "\n "]), st.sampled_from(["", " ", "\r"]),
              st.sampled_from(['"', "'", ""]), values, st.sampled_from(['"', "'", "", "x"]))
    .map(lambda t: f"{t[0]}={t[1]}{t[2]}{t[3]}{t[4]}"),
)
attrs = st.lists(st.tuples(st.sampled_from(WS), st.sampled_from(ATTR_NAMES), value_part)
                 .map(_text), max_size=5).map(_text)
tags = st.tuples(
    st.sampled_from(["<", "</", "<", "<"]),
    st.sampled_from(NAMES),
    attrs,
    st.sampled_from(["", " ", "/", " /", "\n"]),
    st.sampled_from([">", ">", ">", "", "/>", "x"]),
).map(_text)
# URL tags that the skip may pass: benign values with at most a hazard or two in them.
BENIGN = ["a", "x/y", "/", "-", ".png", "1x", " ", "?q=1"]
HAZARD = [":", "\\", "&", "//", "/\t", "/\n", "/\r", "/\f", "/ ", "/\v", "/'", '/"', "/>", '"',
          "'", ">", "<", "=", "\x00", "\xe9", "d", "data-consent", ""]
quiet_values = st.lists(st.one_of(st.sampled_from(BENIGN), st.sampled_from(BENIGN),
                                  st.sampled_from(HAZARD)), max_size=4).map(_text)
quiet_attrs = st.lists(
    st.tuples(st.sampled_from([" ", "\n", "/", " /", "\t", "\f"]),
              st.sampled_from(["src", "alt", "srcset", "x", "d", "data", "data-consent",
                               "data-consent-src", "data-consentx", "=a", "dat", "a'b"]),
              st.sampled_from(["", "=", " = ", "=\r", "\n="]),
              st.sampled_from(['"', "'", "", ""]), quiet_values)
    .map(lambda t: t[0] + t[1] + (t[2] + t[3] + t[4] + t[3] if t[2] else "")),
    max_size=4).map(_text)
url_tags = st.tuples(st.sampled_from(["<"]), st.sampled_from(rewrite._PLAIN_URL_TAGS), quiet_attrs,
                     st.sampled_from(["", " ", "/", "\r"]),
                     st.sampled_from([">", ">", ">", "", "x>"])).map(_text)
text = st.text(alphabet=st.sampled_from("ab <>/=\"'!-&:\\\x00\xe9"), max_size=6)
pieces = st.lists(st.one_of(tags, url_tags, url_tags, st.sampled_from(SOUP), text),
                  max_size=12).map(_text)


@st.composite
def buffers(draw: st.DrawFn) -> bytes:
    raw = draw(pieces).encode(draw(st.sampled_from(["utf-8", "latin-1"])), "replace")
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=4))
    # Mostly as the rewriter calls it (a lowercased copy); raw bytes too (uppercase '<A' etc.).
    if draw(st.integers(0, 3)):
        raw = raw.lower()
    cut = draw(st.integers(0, len(raw)))  # truncated anywhere, mid-tag included
    return raw[:cut] if draw(st.booleans()) else raw


@settings(max_examples=examples(3000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buffers())
@example(b'<img src="a/b" alt=x>')
@example(b"<img src=a/\tb>")
@example(b"<img data-consent>")
@example(b"<img data-consentx>")
@example(b"<img data-consent")
@example(b"<img =x>")
@example(b'<div title="<!--">x<script>')
@example(b'<a b=x"y c="z>"><script src=//ads>')
@example(b"<scripts><imgx></noscripts></body ></bodyx>")
@example(b"</>< <1<\xff<!x<?x</ x>")
@example(b'<img src="')
@example(b"<img src='x'/")
def test_c_skip_equals_regex(buf: bytes) -> None:
    check_all_positions(buf)


@settings(max_examples=examples(3000), deadline=None)
@given(st.binary(max_size=40), st.integers(-3, 45))
def test_c_skip_equals_regex_on_random_bytes(buf: bytes, pos: int) -> None:
    assert _speedups.skip_end(buf, pos) == regex_end(buf, pos)


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.html")))
def test_c_skip_equals_regex_on_the_corpus(name: str) -> None:
    low = (CORPUS / name).read_bytes().lower()
    for pos in range(len(low) + 1):
        assert _speedups.skip_end(low, pos) == regex_end(low, pos), pos


@pytest.mark.parametrize("quote", ['"', "'", ""])
def test_every_single_hazard_in_a_url_tag_value(quote: str) -> None:
    """Exhaustive: each hazard byte(s), at the start, middle and end of each kind of value."""
    for hazard in HAZARD:
        for value in (hazard + "a/b", "a/" + hazard + "b", "a/b" + hazard, hazard):
            for name in ("src", "data-consent", "data-consentx", "d"):
                for tail in (">", " >", "/>", " alt=x>", ""):
                    doc = f"<img {name}={quote}{value}{quote}{tail}t<link a>".encode("latin-1")
                    check_all_positions(doc)


def test_every_prefix_of_tricky_tags() -> None:
    doc = (b'<p>x<img alt="a>b" src=/x/y.png width=1><div title=\'<!--\' a=b"c d="e>'
           b"<link rel=stylesheet href=/a.css /><img src='//ads' ><source srcset=\"/a 1x\">"
           b"</span ><br/></p x=y><video poster=a/\r/b></video></>< x<!-- c --></body>")
    for cut in range(len(doc) + 1):
        check_all_positions(doc[:cut])


def test_name_lists_match_the_rewriter() -> None:
    assert tuple(rewrite._NAME_SET) == _speedups.NAMES
    assert _speedups.END_NAMES == rewrite._END_NAMES
    assert _speedups.PLAIN_URL_TAGS == rewrite._PLAIN_URL_TAGS


def test_rewriter_uses_it_unless_told_not_to() -> None:
    if os.environ.get("CONSENT_GATE_PURE_PYTHON"):
        assert rewrite._skip_end is None
    else:
        assert rewrite._skip_end is _speedups.skip_end


def edit_lists(size: int) -> st.SearchStrategy[list[tuple[int, int, bytes]]]:
    """Edits as the tokenizer makes them (in order) and as it never does (backwards, past the
    end, overlapping): splice must read every list as splice_py does."""
    index = st.integers(-2, size + 3).map(lambda i: max(i, 0))
    return st.lists(st.tuples(index, index, st.binary(max_size=6)), max_size=12)


@settings(max_examples=examples(3000), deadline=None)
@given(st.binary(max_size=40).flatmap(
    lambda b: st.tuples(st.just(b), edit_lists(len(b)), st.integers(0, len(b) + 3))))
def test_splice_equals_the_python_reference(case: tuple[bytes, list[tuple[int, int, bytes]], int]
                                            ) -> None:
    buf, edits, stop = case
    assert _speedups.splice(buf, edits, stop) == splice_py(buf, edits, stop)
    assert _speedups.splice(bytearray(buf), edits, stop) == splice_py(buf, edits, stop)


def test_splice_writes_one_exact_bytes_object() -> None:
    buf = b"<p>a <img src=x> b</p>"
    got = _speedups.splice(buf, [(0, 0, b"<!--H-->"), (10, 13, b"data-src"), (22, 22, b"!")], 22)
    assert got == b"<!--H--><p>a <img data-src=x> b</p>!"
    assert type(got) is bytes and len(got) == len(buf) + 8 + 5 + 1
    assert _speedups.splice(buf, [], 3) == b"<p>"
    assert _speedups.splice(buf, [(3, 22, b"")], 22) == b"<p>"  # a dropped stretch
    for bad in ([(0, 1)], [(0, 1, "x")], [[0, 1, b"x"]], [(0.0, 1, b"x")]):
        with pytest.raises(TypeError):
            _speedups.splice(buf, bad, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _speedups.splice("<p>", [], 1)  # type: ignore[arg-type]


def big_splice(size: int, seed: int) -> tuple[bytes, list[tuple[int, int, bytes]], bytes]:
    """A buffer above splice's reuse threshold (256 KB), its edits and the expected output."""
    buf = (b"<p>%d " % seed) * (size // 4)
    edits = [(3, 3, b"<i>%d</i>" % seed), (size // 2, size // 2 + 7, b""), (size // 4 * 3, size // 4 * 3, b"!")]
    return buf, edits, splice_py(buf, edits, len(buf))


def test_splice_never_changes_an_output_still_held() -> None:
    """A large output is written into the last one's bytes object only when nothing else holds
    it: outputs kept by the caller (the memo, a server's buffer, a memoryview) stay as they were,
    and each output's length and hash are its own."""
    kept = []
    for size, seed in ((300_000, 1), (300_000, 2), (420_000, 3), (280_000, 4)):
        buf, edits, want = big_splice(size, seed)
        got = _speedups.splice(buf, edits, len(buf))
        assert got == want and len(got) == len(want) and hash(got) == hash(want)
        kept.append((got, want))
    view = memoryview(kept[-1][0])
    held = kept[-1][1]
    del kept[-1]
    for size, seed in ((280_000, 5), (500_000, 6)):
        buf, edits, want = big_splice(size, seed)
        got = _speedups.splice(buf, edits, len(buf))
        assert got == want and hash(got) == hash(want)
    assert view == held
    assert all(got == want for got, want in kept)


def test_splice_reuses_a_large_output_nobody_holds() -> None:
    """The fresh 1 MB block per page (faulted in from the kernel each time) is what the reuse
    saves: a large output let go of is the next one's bytes object (the same object for the
    same length), resized to each length and with its own hash."""
    buf, edits, want = big_splice(300_000, 7)
    first = _speedups.splice(buf, edits, len(buf))
    assert hash(first) == hash(want)  # a cached hash, which the next output must not inherit
    address = id(first)
    del first
    buf, edits, want = big_splice(300_000, 8)
    again = _speedups.splice(buf, edits, len(buf))
    assert again == want and hash(again) == hash(want)
    assert id(again) == address
    del again
    for size, seed in ((350_000, 9), (260_000, 10), (350_000, 11)):
        buf, edits, want = big_splice(size, seed)
        got = _speedups.splice(buf, edits, len(buf))
        assert got == want and len(got) == len(want) and hash(got) == hash(want)
        del got


def test_accepts_any_buffer_and_rejects_str() -> None:
    assert _speedups.skip_end(bytearray(b"ab<p>c<img"), 0) == 6
    assert _speedups.skip_end(memoryview(b"xxab<p>c<img")[2:], 0) == 6
    with pytest.raises(TypeError):
        _speedups.skip_end("<p>", 0)  # type: ignore[arg-type]


@pytest.mark.skipif(sys.platform != "linux", reason="mprotect guard page via libc")
def test_no_read_past_the_end_of_the_buffer() -> None:
    """Each buffer ends right before an inaccessible page: any read past its end segfaults."""
    docs = [b"<img src='/a/b' data-consent", b'<div a="x', b"<img src=a/", b"<img src=a/b",
            b"<img src=a", b'<img src="a/', b"<img data-consentx", b"<img data-consen",
            b"<img", b"<x", b"<", b"</", b"</x", b"</ab c=d", b"<a b", b"<a b ", b"<a b=",
            b"<a b= ", b"<a b='", b"<div title=x>text<p", b"<img a=b >t<link x"]
    with guarded_windows() as place:
        for doc in docs:
            for cut in range(1, len(doc) + 1):
                piece = doc[:cut]
                window = place(piece)
                for pos in range(len(piece) + 1):
                    assert _speedups.skip_end(window, pos) == regex_end(piece, pos)
                    edits = [(pos, len(piece) + 1, b"x")]
                    assert _speedups.splice(window, edits, len(piece)) == splice_py(
                        piece, edits, len(piece))
                    assert _speedups.splice(window, [], pos + 2) == piece[:pos + 2]
                window.release()
