"""The native pass (``scan_end`` in middleware/_speedups.c) changes nothing a rewriter returns:
for adversarial HTML fed in any chunking, the rewriter with it and the pure-Python rewriter
(the regex skip, as under ``CONSENT_GATE_PURE_PYTHON=1``) give the same bytes from every
``feed`` and ``finish``, the same ``take_enabled()`` after each, the same ``unknown_hosts`` and
``blocked``. The URLs use every host spelling the URL parser reads (ports, userinfo, case,
trailing dots, IDN, percent, backslashes, tabs, character references) against exact and
wildcard partner hosts and their decoys.
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from middleware.hosts import HostMatcher
from middleware.html import native
from middleware.html.grammar import _SVG_FLAT_RE
from middleware.rewrite import HtmlRewriter, RewritePlan
from middleware.ui.templates import placeholder_size
from tests.support.budget import examples
from tests.support.guard_page import guarded_windows

try:
    from middleware import _speedups
except ImportError:  # pragma: no cover - a pure-Python install
    _speedups = None  # type: ignore[assignment]

if native.scan_end is None:
    if os.environ.get("CI") and not os.environ.get("CONSENT_GATE_PURE_PYTHON"):
        pytest.fail("middleware._speedups.scan_end is not in use (build it: pip install -e .)",
                    pytrace=False)
    pytest.skip("the native pass is not in use (pure-Python install or mode)",
                allow_module_level=True)

CORPUS = Path(__file__).parent / "corpus"
PARTNERS = {
    "ads": ["pagead2.googlesyndication.com", "*.doubleclick.net"],
    "yt": ["www.youtube.com", "*.ytimg.com"],
    "fb": ["connect.facebook.net", "*.facebook.com."],
    "odd": ["*.Example.ORG", "exact.example"],
    # overlapping patterns: the exact host beats the wildcard, a longer suffix a shorter one
    "sub": ["a.example.org", "*.exact.example", "*.b.example.org"],
}
MATCHER = HostMatcher(PARTNERS)


# The plan's placeholders in parts (RewritePlan.placeholder_parts), for the native pass; "sub"
# has none, so its placeholder is Python's.
PARTS = {pid: (f'<div data-ph="{pid}"'.encode(), b"></div>") for pid in PARTNERS if pid != "sub"}


def placeholder(partner: str, attrs: Mapping[str, str]) -> bytes:
    if partner not in PARTS:
        return f'<div data-ph="{partner}">{len(attrs)}</div>'.encode()
    head, tail = PARTS[partner]
    return head + placeholder_size(attrs).encode() + tail


def plan(allowed: frozenset[str], inject: bool,
         granted: frozenset[str] = frozenset({"ads"})) -> RewritePlan:
    return RewritePlan(
        head_end=b"<!--H-->" if inject else b"", body_start=b"<!--S-->" if inject else b"",
        body_end=b"<!--E-->" if inject else b"",
        injected_partners=frozenset({"ads"}) if inject else frozenset(),
        allowed_partners=allowed, granted_purposes=granted, matcher=MATCHER,
        placeholder=placeholder, placeholder_parts=PARTS)


@contextmanager
def pure() -> Iterator[None]:
    scan, skip, splice, flat = native.scan_end, native.skip_end, native.splice, native.flat_svg_end
    native.scan_end = native.skip_end = native.splice = native.flat_svg_end = None
    try:
        yield
    finally:
        native.scan_end, native.skip_end, native.splice, native.flat_svg_end = (
            scan, skip, splice, flat)


def trace(p: RewritePlan, chunks: list[bytes]) -> tuple[object, ...]:
    rw = HtmlRewriter(p)
    steps = []
    for c in chunks:
        steps.append((rw.feed(c), rw.take_enabled(), frozenset(rw.unknown_hosts)))
    steps.append((rw.finish(), rw.take_enabled(), frozenset(rw.unknown_hosts)))
    return tuple(steps), frozenset(rw.blocked)


def check(doc: bytes, cuts: list[int], allowed: frozenset[str], inject: bool,
          granted: frozenset[str] = frozenset({"ads"})) -> None:
    bounds = sorted({0, len(doc), *(c % (len(doc) + 1) for c in cuts)})
    chunks = [doc[a:b] for a, b in pairwise(bounds)] or [b""]
    p = plan(allowed, inject, granted)
    native = trace(p, chunks)
    with pure():
        reference = trace(p, chunks)
    assert native == reference, (doc, chunks)


# --- the generator -----------------------------------------------------------------------------

SCHEMES = ["https:", "http:", "HTTPS:", "Http:", "http&colon;", "https&#58;", "ws:", "wss:", "ftp:", "data:", "javascript:",
           "mailto:", "blob:", "h-t+t.p:", "1http:", "", "", "", "&#x68;ttps:", "&#104ttp:",
           "ht&Tab;tps:", "htt&NewLine;p:", "ht&#9;tp:"]
SLASHES = ["//", "//", "", "/", "///", "\\\\", "/\\", "/\t/", "/\n/", "/ /", "&#47;&#47;", "&sol;/"]
USERINFO = ["", "", "", "user@", "u:p@", "@", "a@b@", "%40@", "ad.doubleclick.net&sol;@",
            "x&#64;"]
HOSTS = ["pagead2.googlesyndication.com", "PAGEAD2.GoogleSyndication.COM",
         "pagead2.googlesyndication.com.", "pagead2.googlesyndication.com..",
         "ad.doubleclick.net", "doubleclick.net", "x.y.doubleclick.net", "doubleclick.net.evil",
         "evildoubleclick.net", "www.youtube.com", "i.ytimg.com", "ytimg.com", "xytimg.com",
         "connect.facebook.net", "www.facebook.com", "facebook.com", "a.example.org",
         "example.org", "EXACT.example", "sub.exact.example", "x.b.example.org", "b.example.org",
         "A.example.org.", "cdn.first.example",
         "first.example", "news.example.com", "localhost", "127.0.0.1", "[::1]", "[::1",
         "b\u00fccher.example", "xn--bcher-kva.example", "%70agead2.googlesyndication.com",
         "ad%2Edoubleclick.net", "\uff41d.doubleclick.net", "a b.example", "a_b.example",
         "a..doubleclick.net", ".doubleclick.net", "", "www.youtube.com&period;",
         "ad.doubleclick&period;net", "ad.double&#99;lick.net", "a\tb.example", "ad.doubleclick.net\\"]
PORTS = ["", "", ":80", ":", ":443", ":8x", ":1:2", ":0"]
PATHS = ["", "/", "/x.js", "/a?b=c:d", "?q=1", "#f", "/p/q.png 2x", "/a,b", "/x&amp;y", "/\u00e9"]
urls = st.tuples(st.sampled_from(["", "", " ", "\t", "\x01", "&#32;", "&Tab;", "&NewLine;"]),
                 st.sampled_from(SCHEMES),
                 st.sampled_from(SLASHES), st.sampled_from(USERINFO), st.sampled_from(HOSTS),
                 st.sampled_from(PORTS), st.sampled_from(PATHS),
                 st.sampled_from(["", "", " ", "\n"])).map("".join)
relative = st.sampled_from(["/static/app.js", "img/a.png", "a:b", "?x", "#y", "", " ", "x//y",
                            "data:text/html,<img src=//ad.doubleclick.net/x>",
                            "data:text/html;base64,PGltZyBzcmM9Ly9hZC5kb3VibGVjbGljay5uZXQveD4="])
url_value = st.one_of(urls, urls, relative)
srcset_value = st.lists(st.tuples(url_value, st.sampled_from(["", " 1x", " 2x", ",", " 100w,"]))
                        .map("".join), min_size=1, max_size=3).map(lambda xs: ", ".join(xs))
list_value = st.lists(url_value, min_size=1, max_size=3).map(" ".join)
rel_value = st.sampled_from(["stylesheet", "canonical", "canonical alternate", "preload",
                             "ICON", "nofollow next", "nofollow\tnext", "&#99;anonical", "",
                             "alternate stylesheet", "me", "pingback x"])
# CSS as fetch.css_urls reads it: url( with and without quotes and spaces, @import strings,
# image-set( strings, any case, comments (closed or not) that hide or form a function,
# escapes and references (the C leaves those to Python), non-ASCII and controls.
CSS_BITS = ["color:red", "width:1px", " ", "\n", "\t", "\x0b", "\x1c", ";", "{", "}", "(", ")",
            '"', "'", ",", "url(", "URL(", "Url( ", "url(\n'", 'url( "', "xurl(", "@import ",
            "@IMPORT", "@import'", '@import "', "@imports", "image-set(", "-webkit-Image-Set( ",
            "/*", "*/", "/* c */", "ur/**/l(", "\\", "\\75rl(", "&amp;", "&#40;", "\u00e9",
            "\u0131mage-set(", " 1x", " 2x)", "@"]
css_url = st.one_of(urls, relative)
css_value = st.lists(st.one_of(st.sampled_from(CSS_BITS), st.sampled_from(CSS_BITS), css_url),
                     max_size=8).map("".join)
VALUES: dict[str, st.SearchStrategy[str]] = {
    "src": url_value, "href": url_value, "srcset": srcset_value, "imagesrcset": srcset_value,
    "data": url_value, "codebase": url_value, "poster": url_value, "background": url_value,
    "ping": list_value, "attributionsrc": list_value, "rel": rel_value, "style": css_value,
    "content": st.sampled_from(["1;url=//ad.doubleclick.net/", "0; URL='https://www.youtube.com/'",
                                "width=device-width", "https://cdn.first.example/og.png"]),
    "http-equiv": st.sampled_from(["refresh", "Refresh ", "content-type", " REFRESH", "X-UA-Compatible",
                                   "&#114;efresh", "refresh\t", "refresh;", "", "\u00a0refresh"]),
    "srcdoc": st.sampled_from(["&lt;img src=//ad.doubleclick.net/x&gt;", "x"]),
    "data-consent": st.sampled_from(["ads", "yt", ""]),
    "attributename": st.sampled_from(["href", "xlink:href", "fill"]),
    # templates.css_size's grammar and what falls outside it
    "width": st.sampled_from(["300", " 300 ", "100%", "12.5px", "12.5 px", "1.2345", "123456",
                              "12345", "12PX", "\v4\v", "\x1c4", "4.", ".5", "&#52;", "", "\u0663",
                              "1e3", "00012", "7%%", "3px;", "9.999", "\t8\n%"]),
    "height": st.sampled_from(["35", "35px", "1", "50%", " 2.5 ", "x", "&amp;1", "0", "99999"]),
    "values": st.builds("{};{}".format, url_value, url_value),
    "data-consent-src": url_value, "data-consent-partner": st.sampled_from(["ads", "yt"]),
    "type": st.sampled_from(["text/plain", "image", "module"]),
    "alt": st.sampled_from(["a: b", "x//y", "&amp;", "<", "'", '"', "\\"]),
    "class": st.just("c"), "name": st.just("og:image"), "property": st.just("og:image"),
    "fill": css_value, "xlink:href": url_value,
}
# Attributes per tag: its URL attributes (grammar._URL_ATTRS) first, then what changes them.
COMMON = ["style", "background", "ping", "attributionsrc", "alt", "class", "data-consent", "SRC",
          "Style", "xlink:href", "HREF", "fill", "content"]
TAG_ATTRS = {
    "img": ["src", "srcset"], "image": ["src", "srcset"], "link": ["href", "imagesrcset", "rel"],
    "source": ["src", "srcset"], "video": ["src", "poster"], "audio": ["src"], "track": ["src"],
    "input": ["src", "type"], "object": ["data", "codebase"], "frame": ["src"],
    "meta": ["content", "http-equiv", "name", "property"], "base": ["href"],
    "script": ["src", "type", "data-consent-src", "data-consent-partner"],
    "iframe": ["src", "srcdoc", "data-consent-src", "width", "height", "WIDTH"],
    "embed": ["src", "width", "height"], "html": ["manifest"],
    "style": ["type", "Type", "media"],
    "set": ["attributeName", "to"], "animate": ["values", "from", "by", "attributeName"],
}


@st.composite
def attribute(draw: st.DrawFn, tag_name: str) -> str:
    own = TAG_ATTRS.get(tag_name.lower(), [])
    name = draw(st.sampled_from(own * 3 + COMMON if own else COMMON))
    sep = draw(st.sampled_from([" ", " ", "\n", "/", " / ", "\t"]))
    if draw(st.integers(0, 9)) == 0:
        return sep + name
    value = draw(VALUES.get(name.lower(), url_value))
    quote = draw(st.sampled_from(QUOTES))
    if quote and quote in value:
        quote = '"' if quote == "'" else "'"
        if quote in value:
            quote = ""
    if not quote and any(c in value for c in " \t\n\f\r>\"'"):
        quote = '"' if '"' not in value else "'"
    eq = draw(st.sampled_from(["=", "=", " = ", "=\n"]))
    return f"{sep}{name}{eq}{quote}{value}{quote}"


QUOTES = ['"', "'", ""]
TAGS = ["img", "IMG", "image", "link", "LINK", "source", "video", "audio", "track", "input", "embed",
        "object", "frame", "meta", "base", "script", "Script", "iframe", "title", "textarea",
        "xmp", "noembed", "noframes", "div", "a", "table", "span", "style", "svg", "noscript",
        "body", "head", "html", "math", "imgx", "scripts", "STYLE", "style", "area", "mglyph",
        "NOSCRIPT", "p", "set", "animate"]
PARTNER_TAGS = ["<img src=//ad.doubleclick.net/x>", "<iframe src=https://www.youtube.com/e>",
                "<script src=//connect.facebook.net/a.js></script>"]
TEXT_BITS = ["x", " ", "\n", "<!-- c -->", "<!-->", "<!--->", "<!-- <script> -->", "<!--", "-->",
             "--!>", "<!DOCTYPE html>", "<?pi x>", "</ x>", "<!x>", "</>", "<", ">", "&amp;",
             "</script>", "</SCRIPT >", "<script>", "</script", "</title>", "</iframe>",
             "</textarea>", "</xmp>", "</noembed>", "</noframes>", "</div>", "</noscript>",
             "</body>", "</head>", "<p>", "\u00e9", "\xff", "<!--<script>", "-->x", *PARTNER_TAGS]


@st.composite
def tag(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(TAGS))
    attrs = "".join(draw(st.lists(attribute(name), max_size=4)))
    close = draw(st.sampled_from([">", ">", " />", "/>", ""]))
    text = ""
    if name.lower() == "style":
        body = draw(st.one_of(css_value, st.lists(st.sampled_from(TEXT_BITS), max_size=3)
                              .map("".join)))
        end = draw(st.sampled_from(["</style>", "</STYLE\n>", "</style", "", "</styles>"]))
        text = body + end
    elif name.lower() in ("script", "iframe", "title", "textarea", "xmp", "noembed", "noframes"):
        body = "".join(draw(st.lists(st.sampled_from(TEXT_BITS), max_size=5)))
        end = draw(st.sampled_from([f"</{name}>", f"</{name.upper()}\n>", f"</{name}", ""]))
        text = body + end
    return f"<{name}{attrs}{close}{text}"


# A <noscript> and what the tokenizer reads inside it in careful mode (the native pass reads
# its content itself when nothing in it has an effect).
noscripts = st.tuples(
    st.sampled_from(["<noscript>", "<NOSCRIPT class=n>", "<noscript style='a:url(//ad.doubleclick.net/x)'>"]),
    st.lists(st.one_of(tag(), st.sampled_from(TEXT_BITS)), max_size=4).map("".join),
    st.sampled_from(["</noscript>", "</NOSCRIPT >", "</noscript", "", "</noscriptx>"])).map("".join)
documents = st.lists(st.one_of(tag(), tag(), st.sampled_from(TEXT_BITS), noscripts),
                     max_size=14).map("".join)


@settings(max_examples=examples(900), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.lists(st.integers(0, 4000), max_size=4),
       st.sampled_from([frozenset(), frozenset({"ads", "yt"}), frozenset({"odd", "fb"}),
                        frozenset({"sub"}), frozenset(PARTNERS)]), st.booleans(),
       st.sampled_from(["utf-8", "latin-1"]))
@example('<img src="https://cdn.first.example/a.png" alt="a: b">', [], frozenset(), False, "utf-8")
@example("<link rel=canonical href=https://news.example.com/>", [], frozenset(), False, "utf-8")
@example("<script src=//assets.example/x.js></script><iframe src=//v.example/></iframe>", [7],
         frozenset(), True, "utf-8")
@example("<img srcset='//a.example/1 1x,//ad.doubleclick.net/2 2x'>", [], frozenset(), False,
         "utf-8")
@example("<embed src=data:text/html,x>", [], frozenset(), False, "utf-8")
@example('<embed src="data:text/html,<img src=//ad.doubleclick.net/x>">', [], frozenset(), False,
         "utf-8")
@example("<img src=//a.example/x style=\"@import '//ad.doubleclick.net/x'\">", [], frozenset(),
         False, "utf-8")
@example('<meta http-equiv=refresh content="1;url=//ad.doubleclick.net/">', [], frozenset(), False,
         "utf-8")
@example('<meta http-equiv=" Refresh" content="1;url=//ad.doubleclick.net/">'
         '<meta http-equiv=content-type content="1;url=//ad.doubleclick.net/">', [], frozenset(),
         False, "utf-8")
@example("<script><!--<script></script><img src=//ad.doubleclick.net/x></script>", [],
         frozenset(), False, "utf-8")
@example('<iframe srcdoc="&lt;img src=//ad.doubleclick.net/x&gt;" src=//v.example/></iframe>',
         [], frozenset(), False, "utf-8")
@example("<img src=//EXACT.example/x><img src=//a.example.org./y><img src=//c.b.example.org/z>",
         [], frozenset({"sub"}), False, "utf-8")
@example("<img data-consent=ads data-consent-src=//ad.doubleclick.net/x src=//a.example/y>", [],
         frozenset({"ads"}), False, "utf-8")
# a placeholder: the first blocked partner's, sized by the first width and height
@example("<iframe src=//www.youtube.com/e ping=//ad.doubleclick.net/p height=1 HEIGHT=2 width=3%>"
         "</iframe><embed style=a:url(//ad.doubleclick.net/) src=//www.youtube.com/ width=4 width=5>",
         [], frozenset(), False, "utf-8")
def test_native_pass_equals_pure_python(doc: str, cuts: list[int], allowed: frozenset[str],
                                        inject: bool, charset: str) -> None:
    check(doc.encode(charset, "replace"), cuts, allowed, inject)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(noscripts, st.sampled_from(TEXT_BITS)), max_size=6).map("".join),
       st.lists(st.integers(0, 2000), max_size=3),
       st.sampled_from([frozenset(), frozenset({"ads", "yt"}), frozenset(PARTNERS)]))
@example("<noscript><div xlink:href=//cdn.example/x fill=url(//ad.doubleclick.net/)></noscript>",
         [], frozenset())
# SMIL values are URLs in careful mode (the C once passed them: the <set> stayed live).
@example('<noscript><set attributeName=href to="https://ad.doubleclick.net/x"></noscript>',
         [], frozenset())
@example("<noscript><animate attributeName=href values='//a.example/x;//ad.doubleclick.net/y'>"
         "</noscript>", [], frozenset({"yt"}))
def test_native_pass_equals_pure_python_in_noscript(doc: str, cuts: list[int],
                                                    allowed: frozenset[str]) -> None:
    """Careful mode inside a <noscript> (what the native pass reads of it itself)."""
    check(doc.encode(), cuts, allowed, True)


# Inline SVG that is not flat, as careful mode reads it (the native pass follows the stack of
# open elements itself when nothing in it has an effect it leaves to Python).
SVG_URLS = ["//ad.doubleclick.net/x", "https://pagead2.googlesyndication.com/i.png",
            "https://www.youtube.com/e", "//cdn.example/x", "//a.example.org/y", "/local.png",
            "data:image/png,x", "//ad.doubleclick.net/x&amp;y"]
SVG_OPEN = ["<svg>", "<SVG class=c width='2'>", "<svg style='fill:url(//ad.doubleclick.net/f)'>",
            "<svg/>", "<svg a=b/>", "<svg viewBox=0/>", '<svg xmlns="http://www.w3.org/2000/svg">']
SVG_TAGS = ["<g>", "<G class=x>", "<g/>", "<title>", "<TITLE >", "<desc>", "<foreignObject>",
            "<foreignobject/>", "<image href={u}/>", "<image xlink:href='{u}' width=1>",
            "<use href={u} />", "<a href={u}>", "<rect fill='url({u})'/>", "<path d=x/>",
            "<set attributeName=href to={u}/>", "<svg>", "<math>", "<mi>", "<font color=red>",
            "<font>", "<b>", "<p>", "<div>", "<img src={u}>", "<img src='{u}' alt=''>", "<br>",
            "<span>", "<select>", "<style>a{{}}</style>", "<script>x</script>", "<textarea>",
            "<iframe src={u}></iframe>", "<embed src={u}>", "<!-- c -->", "<![CDATA[x]]>",
            "<p title='</title>'>", "<circle r='1'/>", "<body>", "<head>", "<html>", "<noscript>",
            "<plaintext>", "<link href={u}>", "<input src={u}>", "<object data={u}></object>",
            "<meta http-equiv=refresh content='1;url={u}'>",
            "</g>", "</title>", "</TITLE>", "</desc>", "</foreignObject>", "</svg>", "</SVG >",
            "</a>", "</p>", "</br>", "</div>", "</span>", "</math>", "</body>", "</head>",
            "</select>", "</>", "</ x>", "x", "<", "< b", "&amp;", ">", "\n"]
svg_bit = st.builds(str.format, st.sampled_from(SVG_TAGS), u=st.sampled_from(SVG_URLS))
# After the <svg>: tags read differently in careful mode and in HTML content, so that where
# careful mode ends (the stack popped, a guard left) shows in the output.
SVG_PROBES = ["", "", "<image href=//ad.doubleclick.net/p>", "<div fill='url(//ad.doubleclick.net/f)'>",
              "<style>@import '//cdn.example/s';</style>", "<title><img src=//ad.doubleclick.net/t>"
              "</title>", "<use href=//cdn.example/u>", "<!-- <img src=//ad.doubleclick.net/c> -->"]
svgs = st.tuples(st.sampled_from(SVG_OPEN), st.lists(svg_bit, max_size=10).map("".join),
                 st.sampled_from(["</svg>", "</svg>", "</SVG\n>", "", "</svgx>"]),
                 st.sampled_from(SVG_PROBES)).map("".join)


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(svgs, svgs, st.sampled_from(TEXT_BITS), tag()), max_size=6).map("".join),
       st.lists(st.integers(0, 2000), max_size=3),
       st.sampled_from([frozenset(), frozenset({"ads", "yt"}), frozenset(PARTNERS)]), st.booleans())
@example('<svg class="v" width="2"><title><img src="https://ad.doubleclick.net/x" alt=""></title>'
         '<image href="https://pagead2.googlesyndication.com/i.png" width="1"/></svg><p>', [],
         frozenset(), True)
@example("<svg><title></svg><style>a{}</style><img src=//ad.doubleclick.net/x>", [], frozenset(),
         True)
@example("<svg><foreignObject><div><svg></div></foreignObject><image href=//cdn.example/x>"
         "</svg></body>", [30], frozenset(), True)
@example("<svg><g><title><div></g><image href=//ad.doubleclick.net/x></svg>", [], frozenset(),
         False)
@example("<svg><desc><p></svg><img src=//ad.doubleclick.net/x>", [], frozenset({"yt"}), True)
@example("<svg><desc><p></desc></svg><div fill='url(//ad.doubleclick.net/f)'>", [], frozenset(),
         False)
def test_native_pass_equals_pure_python_in_svg(doc: str, cuts: list[int], allowed: frozenset[str],
                                               inject: bool) -> None:
    """Careful mode inside an inline <svg> (what the native pass reads of it itself)."""
    check(doc.encode(), cuts, allowed, inject)


# Blocked iframes and embeds: the placeholder the native pass makes from the plan's parts.
SIZE_VALUES = ["300", " 300 ", "100%", "12.5px", "12.5 px", "1.2345", "1.234", "123456", "12345",
               "12PX", "\v4\v", "\x1c4", "4.", ".5", "&#52;", "", "\u0663", "1e3", "00012", "7%%",
               "3px;", "9.999", "\t8\n%", "35", "0", "99999", "1 %", "2px ", "-1"]
PH_ATTRS = st.one_of(
    st.builds(" {}='{}'".format, st.sampled_from(["width", "height", "WIDTH", "Height"]),
              st.sampled_from(SIZE_VALUES)),
    st.builds(" {}={}".format, st.sampled_from(["width", "height"]),
              st.sampled_from(["300", "50%", "1.5px", "x"])),
    st.builds(" {}={}".format, st.sampled_from(["ping", "src", "title", "style"]),
              st.sampled_from(["//ad.doubleclick.net/p", "//www.youtube.com/q", "//cdn.example/u",
                               "a:url(//connect.facebook.net/s)", "t"])),
    st.sampled_from([" width", " height", " allowfullscreen", " /"]))
placeholder_tags = st.builds(
    "<{}{}{}>{}".format, st.sampled_from(["iframe", "IFRAME", "embed"]),
    st.sampled_from([" src=//www.youtube.com/e", " src=https://ad.doubleclick.net/x",
                     " src=//a.example.org/s", " src=//cdn.example/c", ""]),
    st.lists(PH_ATTRS, max_size=5).map("".join),
    st.tuples(st.lists(st.sampled_from(TEXT_BITS), max_size=3).map("".join),
              st.sampled_from(["</iframe>", "</IFRAME x=y>", "</iframe", "</iframe x='", "",
                               "</iframe/>"])).map("".join))


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(placeholder_tags, st.sampled_from(TEXT_BITS)), max_size=5).map("".join),
       st.lists(st.integers(0, 2000), max_size=3),
       st.sampled_from([frozenset(), frozenset({"ads"}), frozenset({"yt", "fb"})]))
@example("<iframe src=//www.youtube.com/e width='123456' height='1.2345'></iframe>"
         "<embed src=//www.youtube.com/e height=1 HEIGHT=2 ping=//ad.doubleclick.net/p width=' 5 %'>",
         [], frozenset())
def test_native_pass_equals_pure_python_on_placeholders(doc: str, cuts: list[int],
                                                        allowed: frozenset[str]) -> None:
    check(doc.encode(), cuts, allowed, False)


# Opt-in markup (decide._judge's data-consent branch and decide._activate) and meta refresh
# (fetch.refresh_url, HostMatcher.partners_in_text), which the native pass reads itself: every
# spelling of their attributes, in any order and case, with references, blanks and duplicates.
OPTIN_ATTRS = {
    "type": ["text/plain", "TEXT/Plain", " text/plain ", "text/plain\t", "text&#47;plain",
             "text/javascript", "", "module", "text/plain;x"],
    "data-consent": ["ads", "ads,analytics", " ads ", "ads analytics", "", "ADS", "ads&#44;x",
                     "analytics", "ads,", ",ads", "ads\tx", "ads\u00a0", "ads,,ads"],
    "data-consent-partner": ["ads", "yt", "ads yt", "fb", "", " ads ", "odd sub", "ad&#115;",
                             "unknown", "yt,ads"],
    "data-consent-type": ["module", "text/javascript", "", "a&amp;b"],
}
OPTIN_NAMES = [*OPTIN_ATTRS, "data-consent-src", "src", "DATA-CONSENT", "Data-Consent-Src", "TYPE",
               "data-consent-srcset", "srcset", "data-consent-href", "href", "data-consent-x",
               "style", "data-consent-poster"]


@st.composite
def optin_attr(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(OPTIN_NAMES))
    if draw(st.integers(0, 12)) == 0:
        return " " + name
    key = name.lower()
    if key in OPTIN_ATTRS:
        value = draw(st.sampled_from(OPTIN_ATTRS[key]))
    elif key.endswith("srcset"):
        value = draw(srcset_value)
    elif key == "style":
        value = draw(css_value)
    else:
        value = draw(url_value)
    quote = '"' if '"' not in value else "'" if "'" not in value else ""
    if not quote:
        value = value.replace(" ", "").replace(">", "")
    return f"{draw(st.sampled_from([' ', chr(10), ' / ']))}{name}={quote}{value}{quote}"


# Mostly with a data-consent marker (else nothing is opt-in), the attributes in any order.
optin_tags = st.builds(
    "<{}{}{}>{}".format,
    st.sampled_from(["script", "SCRIPT", "script", "img", "iframe", "link", "video", "embed",
                     "source"]),
    st.tuples(st.sampled_from([" data-consent=ads", " data-consent='ads analytics'",
                               " DATA-CONSENT=ads", ""]),
              st.lists(optin_attr(), max_size=5))
    .flatmap(lambda t: st.permutations([t[0], *t[1]])).map("".join),
    st.sampled_from(["", " /"]),
    st.sampled_from(["x = 1;</script>", "</script>", "</iframe>", "", "</script", "</SCRIPT >"]))
REFRESH_URLS = ["https://cdn.example/?i.ytimg.com/connect.facebook.net/ad.doubleclick.net",
                "//www.youtube.com/?c=exact.example/a.example.org", "//ad.doubleclick.net/r", "https://www.pinterest.com/", "https://www.youtube.com/",
                "/local", "https://cdn.example/?to=ad.doubleclick.net", "HTTPS://WWW.YOUTUBE.COM",
                "//exact.example", "https://x.example/i.ytimg.com", "//a.example&amp;b", "", "x"]
refresh_content = st.tuples(
    st.sampled_from(["0", "1", "86400", " 5", "1.5", "", "00.", "x"]),
    st.sampled_from([";", ",", " ; ", "", " ", ";;"]),
    st.sampled_from(["url", "URL", "Url", "", "uRl "]), st.sampled_from(["=", " = ", "", "=="]),
    st.sampled_from(["", "'", '"', "'"]), st.one_of(st.sampled_from(REFRESH_URLS), url_value),
    st.sampled_from(["", " ", "'", "x", "' y"])).map("".join)
EQUIV = ["refresh", "Refresh", " REFRESH ", "refresh\t", "&#114;efresh", "content-type", "",
         "refreshx", "re fresh"]


@st.composite
def refresh_tag(draw: st.DrawFn) -> str:
    attrs = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(["http-equiv", "HTTP-EQUIV", "content", "Content", "name",
                                     "style", "data-consent"]))
        key = name.lower()
        value = draw(st.sampled_from(EQUIV) if key == "http-equiv" else refresh_content
                     if key == "content" else css_value if key == "style"
                     else st.sampled_from(["ads", "viewport"]))
        quote = '"' if '"' not in value else "'" if "'" not in value else ""
        if not quote:
            value = value.replace(" ", "").replace(">", "")
        attrs.append(f" {name}={quote}{value}{quote}" if draw(st.integers(0, 9)) else f" {name}")
    return "<meta" + "".join(attrs) + draw(st.sampled_from([">", "/>", ""]))


GRANTED = [frozenset(), frozenset({"ads"}), frozenset({"ads", "analytics"})]


@settings(max_examples=examples(800), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(optin_tags, refresh_tag(), refresh_tag(), st.sampled_from(TEXT_BITS),
                          tag()), max_size=6).map("".join),
       st.lists(st.integers(0, 2000), max_size=3),
       st.sampled_from([frozenset(), frozenset({"ads"}), frozenset({"ads", "yt"}),
                        frozenset({"yt", "fb"}), frozenset(PARTNERS)]),
       st.sampled_from(GRANTED), st.booleans())
@example('<script type="text/plain" data-consent="ads">window.__adsOptIn = true;</script>', [],
         frozenset({"ads"}), frozenset({"ads"}), False)
@example("<script data-consent=ads type=text/plain src=//x.example/a TYPE=module "
         "data-consent-src=//ad.doubleclick.net/a data-consent-type=module data-consent-src=/b>"
         "</script>", [30], frozenset({"ads"}), frozenset({"ads"}), False)
@example("<img data-consent='ads analytics' data-consent-srcset='//i.ytimg.com/a 1x' srcset=/x>",
         [], frozenset({"yt"}), frozenset({"ads", "analytics"}), False)
# each check of the opt-in: the partners found and declared allowed, the purposes granted,
# no partner blocked, the type's blanks, the declared partners enabled
@example("<script data-consent=ads data-consent-src=//ad.doubleclick.net/a></script>", [],
         frozenset({"yt"}), frozenset({"ads"}), False)
@example("<script type=text/plain data-consent=ads data-consent-partner=fb></script>", [],
         frozenset({"ads"}), frozenset({"ads"}), False)
# a declared partner allowed, another not: nothing enabled (the C once kept the first)
@example('<script data-consent=ads type data-consent-partner="ads yt" data-consent-src>x</script>',
         [], frozenset({"ads"}), frozenset({"ads"}), False)
@example("<script type=text/plain data-consent=ads data-consent-partner='yt'>x</script>", [],
         frozenset({"yt"}), frozenset({"ads"}), False)
@example("<img data-consent=ads data-consent-src=/x src=//ad.doubleclick.net/y>", [],
         frozenset(), frozenset({"ads"}), False)
@example("<script type=' text/plain ' data-consent=ads>x</script>", [], frozenset(),
         frozenset({"ads"}), False)
@example("<meta http-equiv=refresh content='0;url=https://cdn.example/?i.ytimg.com/"
         "connect.facebook.net/ad.doubleclick.net'>", [], frozenset(), frozenset(), False)
@example('<meta http-equiv="refresh" content="86400;url=https://www.pinterest.com/">', [], frozenset(),
         frozenset(), False)
@example("<meta content='0; URL=\"//cdn.example/?ad.doubleclick.net\"' http-equiv=Refresh "
         "content='1;url=https://www.youtube.com/'>", [], frozenset({"yt"}), frozenset(), False)
def test_native_pass_equals_pure_python_on_optin_and_refresh(
        doc: str, cuts: list[int], allowed: frozenset[str], granted: frozenset[str],
        inject: bool) -> None:
    check(doc.encode(), cuts, allowed, inject, granted)


# iframe srcdoc documents (decide._partners_of "srcdoc", nested.document_partners), which the
# native pass reads with a second pass when their references are simple: inner documents of
# partner tags, scripts, styles, opt-in markup, refreshes and nested srcdocs, written with
# every escaping (html.escape, only < > and quotes, &period; &sol; &colon;, &#46; &#x2E;,
# upper case, no semicolon, non-ASCII) and blank.
SRCDOC_INNER = ["<img src=https://ad.doubleclick.net/x?a=1>", "<img src=//cdn.example/i>",
                "<script src=//connect.facebook.net/a.js></script>", "<p>x</p>", "",
                "<iframe src=https://www.youtube.com/e></iframe>", "<b>i.ytimg.com</b>",
                "<style>a{background:url(//ad.doubleclick.net/s)}</style>", "<!-- c -->",
                "<meta http-equiv=refresh content='0;url=//www.youtube.com/'>",
                "<script type=text/plain data-consent=ads>x</script>", "<img src=//a.example.org/",
                "<iframe srcdoc='&lt;img src=//ad.doubleclick.net/n&gt;'></iframe>", "<script>",
                "<body><img src=//exact.example/b></body>", "\u00e9", "<img\tsrc=//x.example/t>"]


def _escape(doc: str, how: str) -> str:
    if how == "full":
        return html.escape(doc)
    if how == "angle":
        return doc.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    if how == "period":
        return doc.replace(".", "&period;").replace("/", "&sol;").replace(":", "&colon;")
    if how == "numeric":
        return doc.replace(".", "&#46;").replace("/", "&#x2F;").replace("<", "&#60;")
    if how == "upper":
        return doc.replace("<", "&LT;").replace(">", "&GT;")
    if how == "nosemi":
        return doc.replace("<", "&lt").replace(">", "&gt")
    return doc.replace("<", "&lt;").replace(".", "&#0046;").replace("a", "&#x61;")


srcdoc_tags = st.builds(
    '<iframe{} srcdoc="{}"{}>{}'.format,
    st.sampled_from(["", " width=1 height=1", " class=v title=srcdoc", " src=//www.youtube.com/e",
                     " srcdoc='&lt;img src=//i.ytimg.com/v&gt;'", " SRCDOC=x"]),
    st.tuples(st.lists(st.sampled_from(SRCDOC_INNER), max_size=3).map("".join),
              st.sampled_from(["full", "angle", "angle", "period", "numeric", "upper", "nosemi",
                               "mixed"]))
    .map(lambda t: _escape(t[0], t[1]).replace('"', "&quot;")),
    st.sampled_from(["", " style=a:b", " ping=//ad.doubleclick.net/p"]),
    st.sampled_from(["</iframe>", "fallback</IFRAME >", "", "</iframe"]))


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(srcdoc_tags, srcdoc_tags, st.sampled_from(TEXT_BITS)), max_size=5)
       .map("".join), st.lists(st.integers(0, 2000), max_size=3),
       st.sampled_from([frozenset(), frozenset({"ads"}), frozenset({"yt", "fb"}),
                        frozenset(PARTNERS)]), st.sampled_from(GRANTED))
@example('<iframe class="vector-srcdoc" title="srcdoc" width="1" height="1" srcdoc="&lt;img '
         'src=https://ad&period;doubleclick&period;net/ddm/activity/src=1234567;type=japantalk;'
         'cat=srcdoc;ord=1?&gt;"></iframe>', [], frozenset(), frozenset(), )
@example('<iframe srcdoc="&lt;script src=//connect.facebook.net/a.js&gt;&lt;/script&gt;i.ytimg.com '
         'ad.doubleclick.net"></iframe>', [9], frozenset({"fb"}), frozenset())
@example('<iframe srcdoc="&lt;b&gt;i&period;ytimg&period;com&lt;/b&gt;"></iframe>', [],
         frozenset(), frozenset())
@example('<iframe srcdoc="&lt;img src=&#x2F;&#x2F;cdn.example/i&gt;"></iframe>', [], frozenset(),
         frozenset())
def test_native_pass_equals_pure_python_on_srcdoc(doc: str, cuts: list[int],
                                                  allowed: frozenset[str],
                                                  granted: frozenset[str]) -> None:
    check(doc.encode(), cuts, allowed, False, granted)


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.html")))
def test_native_pass_equals_pure_python_on_the_corpus(name: str) -> None:
    doc = (CORPUS / name).read_bytes()
    for allowed in (frozenset(), frozenset(PARTNERS)):
        for cuts in ([], [len(doc) // 3, 2 * len(doc) // 3], list(range(0, len(doc), 4093))):
            check(doc, cuts, allowed, True)


def test_native_pass_reports_unknown_hosts_of_skipped_tags() -> None:
    """A tag the native pass consumes still reports its third-party hosts (discovery, scan)."""
    doc = (b'<img src="HTTPS://User@CDN.Other.Example.:443/a.png" alt="x: y">'
           b"<script src=//js.other.example/a.js></script><p ping='//p.example/a //q.example/b'>")
    rw = HtmlRewriter(plan(frozenset(), False))
    assert rw.feed(doc) + rw.finish() == doc
    assert rw.unknown_hosts == {"cdn.other.example", "js.other.example", "p.example", "q.example"}


def test_native_pass_stops_at_a_partner_host() -> None:
    doc = b'<img src="https://cdn.first.example/a.png" srcset="//AD.doubleclick.net./x 2x">'
    rw = HtmlRewriter(plan(frozenset(), False))
    out = rw.feed(doc) + rw.finish()
    assert b"data-consent-srcset" in out and rw.blocked == {"ads"}


# --- the C function itself ---------------------------------------------------------------------

def table() -> object:
    return MATCHER.native_table(_speedups.make_hosts)


@pytest.mark.parametrize(("doc", "hosts"), [
    (b'<img src="HTTPS://User@CDN.Other.Example.:443/a.png" alt="x: y">', {"cdn.other.example"}),
    (b"<IMG SRCSET='//a.example/1 1x,//b.example/2 2x'>", {"a.example", "b.example"}),
    (b"<link rel=canonical href=https://news.example.com/>", set()),
    (b"<link rel=stylesheet href=https://cdn.example/s.css>", {"cdn.example"}),
    (b"<script src=/a.js>if (a<b) x('<!--<script>x</script>-->')</script >", set()),
    (b"<iframe src=//v.example/e title=v>fallback</IFRAME>", {"v.example"}),
    (b"<title>a <b> c</title ><textarea>x</textarea/>", set()),
    (b"<!DOCTYPE html><!-- c --><!--><!---><? pi ></ x><div background=//bg.example/>",
     {"bg.example"}),
    (b"<img src=data:image/gif;base64,R0lGOD>", set()),
    (b"<img src='//A.example/x?a=1&amp;b=\xc3\xa9&#9;' style=color:red>", {"a.example"}),
    (b"<link rel=x href=//a.example/ style=a(b)>", {"a.example"}),
    (b"<div style='background:URL( \"//bg.example/a.png\" )'>", {"bg.example"}),
    (b"<p style=\"a:url(//u.example/x);@import 'https://i.example/s.css';"
     b"b:-webkit-image-set('//s.example/1.png' 1x, '//t.example/2.png' 2x)\">",
     {"u.example", "i.example", "s.example", "t.example"}),
    (b"<p style='a:b /* url(//c.example/x) */; c:ur/* */l(//d.example/y)'>",
     {"c.example", "d.example"}),
    (b"<style media=all>@import url(//cdn.example/a.css); a{background:url(/x)}</style ><p>",
     {"cdn.example"}),
    (b"<style></style><STYLE>a:b</STYLE>", set()),
    (b"<meta http-equiv=content-type content='text/html; charset=utf-8'><meta http-equiv='X-UA-"
     b"Compatible' content='IE=edge' http-equiv=refresh><meta http-equiv content='0;url=//a.example/'>"
     b"<img http-equiv=refresh src=//i.example/>", {"i.example"}),
    (b"<a href=/x ping='//p.example/?a=1&amp;b=2 https://q.example/r&amp;s'>", {"p.example",
                                                                               "q.example"}),
    # a meta refresh: its URL's host, and partners only as text (none here)
    (b"<meta http-equiv=refresh content='0;url=//a.example/'><meta HTTP-EQUIV=' Refresh ' "
     b"content=1;url=//b.example/ content=\"2; URL = 'https://c.example/x' \">", {"a.example",
                                                                              "b.example",
                                                                              "c.example"}),
])
def test_scan_end_consumes_what_needs_no_python(doc: bytes, hosts: set[str]) -> None:
    found: set[str] = set()
    assert _speedups.scan_end(doc, 0, table(), found, None, set()) == len(doc)
    assert found == hosts


@pytest.mark.parametrize("doc", [
    b"<img src=//ad.doubleclick.net/x>", b"<img src=//X.AD.DoubleClick.NET./x>",
    b"<img src=//a.example.org/x>", b"<img src=//example.org:8080/x>",
    b"<img src=//exact.example/>", b"<img src=//a%2eexample/x>", b"<img src=//a.example&sol;x>",
    b"<img src=http&colon;//a.example/>", b'<img src="/&sol;a.example/">',
    b"<img src='//a.example&#47;@ad.doubleclick.net/'>",
    b"<img src='//ad.doubleclick.net&sol;@a.example/'>", b"<img srcset='//a.example/x&#44;2x'>",
    b"<img src=//[::1]/x>", b"<img src='//a\tb.example/'>", b"<img src=\\\\a.example\\x>",
    b"<img src=//b\xc3\xbccher.example/>", b"<img data-consent src=//a.example/>",
    b"<meta http-equiv=refresh content='0;url=//ad.doubleclick.net/'>",
    b"<meta http-equiv=refresh content='0;url=https://x.example/?to=AD.doubleclick.net'>",
    b"<meta http-equiv=refresh content='0;url=//a.example/&amp;'>", b"<iframe srcdoc=x src=//a/>",
    b"<meta http-equiv=&#114;efresh content=1;url=//a.example/>",
    b"<meta http-equiv='refresh\t' content=1;url=//a.example/>",
    b"<embed src=data:text/html,x>", b"<script src=//a.example/>no end", b"<!-- no end",
    b"<img src=//a.example/x", b"<body>",
    b"<p style='a:url(//a.example/x\\)'>", b"<p style='a:url(//a.example/&amp;)'>",
    b"<p style='a:url(//a.example/\xc3\xa9)'>", b"<p style='a:url(\x0b//a.example/)'>",
    b"<p style='a:url(//ad.doubleclick.net/x)/**/'>", b"<style>a{}", b"<style>a{}</style",
    b"<style>a{background:url(//a.example/x)} /* c */ @import '//ad.doubleclick.net/'</style>",
    b"<style>@import '//a.example/&#47;'</style>", b"<a ping='//p.example/&amp'>",
    b"<a ping='//p.example&amp;/'>",
    b"<html manifest=//ad.doubleclick.net/m>", b"<head style='a:url(//ad.doubleclick.net/)'>", b"<style>", b"<svg>", b"<noscript>", b"<noscript><!---->", b"</head>", b"<plaintext>",
])
def test_scan_end_stops_where_python_must_look(doc: bytes) -> None:
    found: set[str] = set()
    assert _speedups.scan_end(b"text" + doc, 0, table(), found, None, set()) == 4
    assert found == set()


def test_scan_end_consumes_allowed_partners_and_reports_them() -> None:
    doc = (b"<iframe src=https://www.youtube.com/e></iframe><img src=//i.ytimg.com/a.jpg "
           b"srcset='//cdn.first.example/b.jpg 2x'><script src=//connect.facebook.net/x.js></script>")
    found: set[str] = set()
    enabled: set[str] = set()
    assert _speedups.scan_end(doc, 0, table(), found, frozenset({"yt", "fb"}), enabled) == len(doc)
    assert (found, enabled) == ({"cdn.first.example"}, {"yt", "fb"})
    enabled.clear()
    stop = doc.index(b"<script")
    assert _speedups.scan_end(doc, 0, table(), found, frozenset({"yt"}), enabled) == stop
    assert _speedups.scan_end(doc, 0, table(), found, None, enabled) == 0


SVG_BITS = ["<svg", "<SVG", " ", "\t", "\n", 'class="icon"', "viewBox='0 0 16 16'",
            "xmlns='http://www.w3.org/2000/svg'", 'xmlns:xlink="http://www.w3.org/1999/xlink"',
            "xmlns:x1='a'", "xmlns:='a'", 'XMLNS="x"', 'd="M1 1h14v14H1z"', "d='a:b'", "d=x",
            'href="//ad.doubleclick.net/x"', "data-consent", "data-consentx", "=", '"', "'", ">",
            "/>", " />", "<path", "<g", "<G", "</g>", "</g >", "</G\n>", "</g/>", "<title>",
            "</title>", "<image", "<use", "</svg>", "</SVG >", "</svg/>", "</svgx>", "<a", "<div>",
            "text", "<!-- c -->", "<circle r='1'/>", "<g/>", "</path>", "<rect/>", "<\u00e9>"]


@settings(max_examples=examples(1500), deadline=None)
@given(st.lists(st.sampled_from(SVG_BITS), max_size=16).map("".join), st.sampled_from(["<svg", "<svg "]))
@example("", '<svg class="icon" viewBox="0 0 16 16"><path d="M1 1h14v14H1z"/></svg>')
@example("", "<svg><g fill='x'><circle r='1'/>t</g></svg >")
@example("", "<svg xmlns='http://www.w3.org/2000/svg'><g><g></g></g></svg>")
def test_flat_svg_end_equals_the_regex(tail: str, head: str) -> None:
    buf = (head + tail).encode()
    m = _SVG_FLAT_RE.match(buf.lower(), 0)
    assert _speedups.flat_svg_end(buf, 0) == (m.end() if m else -1)
    if buf[4:5] and buf[4:5] in b" \t\n\f\r/>":  # the tag is named svg: the native pass
        # passes it whole when it is flat; else it reads it as careful mode does (or stops)
        if m is not None:
            assert _speedups.scan_end(buf, 0, table(), set(), None, set()) in range(
                m.end(), len(buf) + 1)
        check(buf, [], frozenset(), False)


def test_scan_end_says_when_the_document_began() -> None:
    found: set[str] = set()
    doc = b"<!DOCTYPE html><HTML lang=en manifest=//m.example/><head>x"
    assert _speedups.scan_end(doc, 0, table(), found, None, set()) == ~len(doc)
    assert found == {"m.example"}
    assert _speedups.scan_end(b"<p>x</p>", 0, table(), found, None, set()) == 8


def test_scan_end_without_a_table_is_the_skip_on_a_lowered_copy() -> None:
    for doc in [b"<IMG SRC=//A.example/>x<Script>", b'<DIV Style="x">y<A HREF=//x>', *(
            p.read_bytes() for p in sorted(CORPUS.glob("*.html")))]:
        low = doc.lower()
        for pos in range(0, len(doc) + 1, 7):
            assert _speedups.scan_end(doc, pos, None, set(), None, set()) == _speedups.skip_end(low, pos)


ALLOWED = frozenset({"yt"})
GUARD_DOCS = [
    b"<script type=x src=//connect.facebook.net/a></script><img srcset='//ad.doubleclick.net/a 2x'>",
    b"<svg xmlns:xlink='x' class=\"i\"><g d='a'><path d='b'/>t</g><rect/></svg >",
    b"<iframe src=https://www.youtube.com/e></iframe><img srcset='//i.ytimg.com/a 1x'>",
    b"<img src='//a.example/b' srcset='//c.example/1 1x, //d.example/2 2x' alt=x>t",
    b'<link rel="canonical alternate" href=https://u@h.example:80/x>',
    b"<script src=//s.example/a.js><!--<script>x</script>--></script>",
    b"<iframe src=//v.example/>x</iframe><title>t</title>",
    b"<!-- c --!><!DOCTYPE x><? y></ z><div ping='//p.example/ //q.example/'>",
    b"<video poster=http://p.example./x.png src=ws://w.example:1/>",
    b"<style type=x>@import '//ad.doubleclick.net/a';a{b:url( \"//c.example/d\" )}</style >",
    b"<p style='a:image-set(\"//s.example/1\" 1x, //t.example/2);b:url(//ad.doubleclick.net/x'>",
    b"<p style='a:u/* c */rl(//u.example/x) /* d'><style>@import\t'//cdn.example/s",
    b"<a ping='//p.example/?a&amp;b //connect.facebook.net/x&amp;'>t",
    b"<head></head ><body background=//ad.doubleclick.net/b x=y></noscript></BODY\n>",
    b"<body><p></body/>",
    b"<noscript class=n><img src=//ad.doubleclick.net/x><area href=//a.example/></p></noscript >",
    b"<svg a=b><title><img src=//ad.doubleclick.net/x></title><image href='//u.example/' />"
    b"<foreignObject><p>t</p></foreignObject><g/></svg >",
    b"<script type=' text/plain' src=x data-consent='ads,b' data-consent-src=//i.ytimg.com/a "
    b"data-consent-type=module data-consent-partner='yt fb'>a</script>",
    b"<img data-consent=ads data-consent-srcset='//i.ytimg.com/a 1x, /b 2x' srcset=/c>",
    b"<meta http-equiv=' Refresh' content=\"1; URL='//www.youtube.com/?ad.doubleclick.net'\">"
    b"<meta content=0;url=//a.example/ http-equiv=refresh>",
    b"<iframe width=1 srcdoc='&lt;img src=https://ad&period;doubleclick&#46;net/x&gt;i.ytimg.com'>"
    b"</iframe><iframe srcdoc=\"&lt;img src=//cdn.example/&#x2F;&gt;&lt;script&gt;\"></iframe>",
]


def _edited(buf: bytes, pos: int, tab: object) -> tuple[int, list[tuple[int, int, bytes]]]:
    edits: list[tuple[int, int, bytes]] = []
    return _speedups.scan_end(buf, pos, tab, set(), None, set(), set(), edits), edits


def _injected(buf: bytes, pos: int, tab: object) -> tuple[int, list[tuple[int, int, bytes]],
                                                          list[bytes | None]]:
    edits: list[tuple[int, int, bytes]] = []
    inj: list[bytes | None] = [b"H", b"S", b""]
    return _speedups.scan_end(buf, pos, tab, set(), ALLOWED, set(), set(), edits, inj,
                              {"ads"}, PARTS, {"ads"}, True), edits, inj


@pytest.mark.skipif(sys.platform != "linux", reason="mprotect guard page via libc")
def test_scan_end_reads_nothing_past_the_end_of_the_buffer() -> None:
    """Each buffer ends right before an inaccessible page: any read past its end segfaults."""
    tab = table()
    with guarded_windows() as place:
        for doc in GUARD_DOCS:
            for cut in range(1, len(doc) + 1):
                piece = doc[:cut]
                window = place(piece)
                for pos in range(len(piece) + 1):
                    assert _speedups.scan_end(window, pos, tab, set(), ALLOWED, set()) == (
                        _speedups.scan_end(piece, pos, tab, set(), ALLOWED, set()))
                    edits: list[tuple[int, int, bytes]] = []
                    end = _speedups.scan_end(window, pos, tab, set(), None, set(), set(), edits)
                    assert (end, edits) == _edited(piece, pos, tab)
                    inj: list[bytes | None] = [b"H", b"S", b""]
                    edits = []
                    end = _speedups.scan_end(window, pos, tab, set(), ALLOWED, set(), set(),
                                             edits, inj, {"ads"}, PARTS, {"ads"}, True)
                    assert (end, edits, inj) == _injected(piece, pos, tab)
                window.release()


def test_scan_end_neutralises_simple_tags_of_blocked_partners() -> None:
    """The edits decide._judge would make: data-consent-partner after the name (partners in
    order of first appearance; a script's type="text/plain" first) and each attribute that
    named a blocked partner renamed, a script's type attributes too."""
    doc = (b'<IMG SRC="//ad.doubleclick.net/x" srcset="//a.example/1 1x, //i.ytimg.com/2 2x" '
           b"background=//www.facebook.com/b>"
           b"<script type=module src=//connect.facebook.net/x.js Type=x>a<b</script>")
    found: set[str] = set()
    enabled: set[str] = set()
    blocked: set[str] = set()
    edits: list[tuple[int, int, bytes]] = []
    assert _speedups.scan_end(doc, 0, table(), found, frozenset({"yt"}), enabled, blocked,
                              edits) == len(doc)
    s = doc.index(b"<script") + 7
    assert edits == [
        (4, 4, b' data-consent-partner="ads fb"'), (5, 8, b"data-consent-SRC"),
        (doc.index(b"background"), doc.index(b"background") + 10, b"data-consent-background"),
        (s, s, b' type="text/plain" data-consent-partner="fb"'),
        (s + 1, s + 5, b"data-consent-type"), (s + 13, s + 16, b"data-consent-src"),
        (doc.index(b"Type"), doc.index(b"Type") + 4, b"data-consent-Type"),
    ]
    assert (found, enabled, blocked) == ({"a.example"}, {"yt"}, {"ads", "fb"})


def test_scan_end_makes_the_injections() -> None:
    """Tokenizer._inject at </head (head_end), <body> (head_end before it if still due,
    body_start after it) and </body (every one still due): each as an edit (its position, its
    position, the bytes) once, None in its place in the list, the injected partners enabled
    with the first non-empty one; </noscript passes."""
    doc = (b"<head><title>t</title></HEAD ><body background=//ad.doubleclick.net/b class=a>"
           b"<p>x</p></noscript></body\n>")
    edits: list[tuple[int, int, bytes]] = []
    enabled: set[str] = set()
    inj: list[bytes | None] = [b"<!--H-->", b"<!--S-->", b"<!--E-->"]
    assert _speedups.scan_end(doc, 0, table(), set(), None, enabled, set(), edits, inj,
                              frozenset({"fb"})) == ~len(doc)
    b, gt = doc.index(b"<body") + 5, doc.index(b"<p>")
    assert edits == [(doc.index(b"</HEAD"), doc.index(b"</HEAD"), b"<!--H-->"),
                     (b, b, b' data-consent-partner="ads"'),
                     (b + 1, b + 11, b"data-consent-background"), (gt, gt, b"<!--S-->"),
                     (doc.index(b"</body"), doc.index(b"</body"), b"<!--E-->")]
    assert inj == [None, None, None] and enabled == {"fb"}
    # <body> before </head>: head_end before it; </body> alone: all three; empty: no edit
    for doc, want in [(b"<body>", [(0, 0, b"H"), (6, 6, b"S")]),
                      (b"x</body>", [(1, 1, b"H"), (1, 1, b"S"), (1, 1, b"E")]),
                      (b"</head>", [(0, 0, b"H")])]:
        edits, enabled, inj = [], set(), [b"H", b"S", b"E"]
        assert _speedups.scan_end(doc, 0, table(), set(), None, enabled, set(), edits, inj,
                                  frozenset({"fb"})) in (len(doc), ~len(doc))
        assert (edits, enabled) == (want, {"fb"})
    edits, enabled, inj = [], set(), [b"", None, b""]
    assert _speedups.scan_end(b"<body></body>", 0, table(), set(), None, enabled, set(), edits,
                              inj, frozenset({"fb"})) == ~13
    assert (edits, enabled, inj) == ([], set(), [None, None, None])
    # cut off: Python holds the tag
    assert _speedups.scan_end(b"x</body", 0, table(), set(), None, set(), set(), [],
                              [b"H", b"S", b"E"], frozenset()) == 1


def test_scan_end_reads_a_noscript_as_careful_mode_does() -> None:
    """A <noscript>'s content as Tokenizer._careful_tag reads it (the scripting browser's guard,
    no foreign element): tags judged with the careful kinds (href and xlink:href except on <a>,
    mglyph src, url( in any value), end tags passed, up to </noscript>."""
    doc = (b"<noscript><img src=//ad.doubleclick.net/x style=display:none><p>t</p>"
           b"<div data-href='//cdn.example/d' fill='url(//f.example/g)'><a href=//ad.doubleclick.net/>"
           b"<mglyph src=//m.example/></noscript ><img src=//i.example/>")
    found: set[str] = set()
    blocked: set[str] = set()
    edits: list[tuple[int, int, bytes]] = []
    assert _speedups.scan_end(doc, 0, table(), found, None, set(), blocked, edits) == len(doc)
    assert edits == [(14, 14, b' data-consent-partner="ads"'), (15, 18, b"data-consent-src")]
    assert (found, blocked) == ({"cdn.example", "f.example", "m.example", "i.example"}, {"ads"})
    # Anything else inside: nothing is reported, Python reads the element from its start tag.
    for inner in [b"<!-- c -->", b"<script>x</script>", b"<style>a{}</style>", b"<svg></svg>",
                  b"<title>t</title>", b"<noscript>", b"<body>", b"</head>", b"<plaintext>",
                  b"<p title='</noscript>'>", b"<iframe src=//a.example/>", b"<img src=//a.example/",
                  b"<embed src=//ad.doubleclick.net/>", b"<?x>", b"</ x>",
                  b"<set attributeName=href to=//a.example/x>", b"<animate VALUES=//a.example/>"]:
        doc = b"t<noscript><img src=//ad.doubleclick.net/x><img src=//u.example/>" + inner + b"</noscript>"
        found, blocked, edits = set(), set(), []
        assert _speedups.scan_end(doc, 0, table(), found, None, set(), blocked, edits) == 1, inner
        assert (found, blocked, edits) == (set(), set(), []), inner
    # the end not in this buffer
    assert _speedups.scan_end(b"<noscript><p>", 0, table(), set(), None, set(), set(), []) == 0


def test_scan_end_reads_an_svg_as_careful_mode_does() -> None:
    """An <svg> that is not flat, as Tokenizer._careful_tag reads it: the stack of open elements
    (an SVG <title> is an HTML integration point: its <img> follows the HTML rules), tags judged
    with the careful kinds, up to the end tag that pops the <svg>."""
    doc = (b'<svg class=v><title><img src="https://ad.doubleclick.net/x" alt=""></title>'
           b"<g><image href=//pagead2.googlesyndication.com/i.png /><use xlink:href=//u.example/s>"
           b"</use></g><a href=//ad.doubleclick.net/n>t</a></svg ><img src=//i.example/>")
    found: set[str] = set()
    blocked: set[str] = set()
    edits: list[tuple[int, int, bytes]] = []
    assert _speedups.scan_end(doc, 0, table(), found, None, set(), blocked, edits) == len(doc)
    assert edits == [(24, 24, b' data-consent-partner="ads"'), (25, 28, b"data-consent-src"),
                     (84, 84, b' data-consent-partner="ads"'), (85, 89, b"data-consent-href")]
    assert (found, blocked) == ({"u.example", "i.example"}, {"ads"})
    # Anything with another effect inside: nothing is reported, Python reads it from the <svg>.
    for inner in [b"<!-- c -->", b"<![CDATA[x]]>", b"<script>x</script>", b"<style>a{}</style>",
                  b"<b>", b"<font>", b"<p>", b"<div>", b"<title><style>", b"<desc><svg>",
                  b"<desc><math>", b"<title><title>", b"<desc><body>", b"</p>", b"</br>",
                  b"<g title='</g>'>", b"<iframe src=//a.example/>", b"<image href=//a.example/",
                  b"<desc><embed src=//ad.doubleclick.net/>", b"<?x>", b"</ x>",
                  b"<title></svg>", b"<g>" * 40]:
        doc = (b"t<svg><image href=//ad.doubleclick.net/x/><image href=//u.example/ />" + inner
               + b"</svg>")
        found, blocked, edits = set(), set(), []
        assert _speedups.scan_end(doc, 0, table(), found, None, set(), blocked, edits) == 1, inner
        assert (found, blocked, edits) == (set(), set(), []), inner
    # the end not in this buffer; a self-closing <svg> is a tag like any other
    assert _speedups.scan_end(b"<svg><g>", 0, table(), set(), None, set(), set(), []) == 0
    assert _speedups.scan_end(b"<svg/><b>", 0, table(), set(), None, set(), set(), []) == 9


def test_scan_end_neutralises_a_blocked_style_sheet() -> None:
    """A <style> naming a blocked partner (in its text or a fetching attribute): type="text/plain"
    and data-consent-partner after the name, its type attributes renamed, each literal @import
    of its text respelled (partners in the order css_urls reads them: url( first, then @import);
    the text is consumed up to its </style."""
    doc = (b"<STYLE type=text/css Media=x>@IMPORT '//ad.doubleclick.net/a.css';"
           b"@import url(//cdn.example/b.css); a{background:url(https://www.facebook.com/c)}"
           b"</style><p style='x:url(//connect.facebook.net/y)'>t")
    found: set[str] = set()
    blocked: set[str] = set()
    edits: list[tuple[int, int, bytes]] = []
    assert _speedups.scan_end(doc, 0, table(), found, None, set(), blocked, edits) == len(doc)
    i, j, p = doc.index(b"@IMPORT"), doc.index(b"@import"), doc.index(b"<p") + 2
    assert edits == [
        (6, 6, b' type="text/plain" data-consent-partner="fb ads"'), (7, 11, b"data-consent-type"),
        (i, i + 7, b"@-consent-blocked-import"), (j, j + 7, b"@-consent-blocked-import"),
        (p, p, b' data-consent-partner="fb"'), (p + 1, p + 6, b"data-consent-style"),
    ]
    assert (found, blocked) == ({"cdn.example"}, {"ads", "fb"})


@pytest.mark.parametrize("doc", [
    b"<iframe src=//ad.doubleclick.net/x></iframe>", b"<embed src=//ad.doubleclick.net/x>",
    b"<img src=//ad.doubleclick.net/x data-consent=ads>",
    # a blocked partner in CSS with a comment: Python's order of partners is not fixed
    b"<p style='a:url(//ad.doubleclick.net/x)/**/'>",
    b"<style>/**/@import '//www.youtube.com/s.css'</style>",
])
def test_scan_end_leaves_placeholders_and_opt_in_to_python(doc: bytes) -> None:
    edits: list[tuple[int, int, bytes]] = []
    assert _speedups.scan_end(doc, 0, table(), set(), None, set(), set(), edits) == 0
    assert edits == []


def test_scan_end_makes_placeholders_from_the_plans_parts() -> None:
    """A blocked iframe or embed with the plan's parts: the element is replaced by head +
    placeholder_size(attrs) + tail (an iframe through its end tag), its partners blocked, its
    unknown hosts recorded, the allowed partners in it not enabled (as decide._judge)."""
    doc = (b"<p><iframe src=https://www.youtube.com/e WIDTH=' 450 ' height=35px width=9 "
           b"ping=//connect.facebook.net/p style=background:url(//u.example/b)>"
           b"<img src=//ad.doubleclick.net/x></iframe x=y><embed src=//ad.doubleclick.net/e height=50%>t")
    found: set[str] = set()
    on: set[str] = set()
    blocked: set[str] = set()
    edits: list[tuple[int, int, bytes]] = []
    args = (found, frozenset({"fb"}), on, blocked, edits, None, (), PARTS)
    assert _speedups.scan_end(doc, 0, table(), *args) == len(doc)
    iframe_end = doc.index(b"<embed")
    assert edits == [
        (3, iframe_end, b'<div data-ph="yt" style="width:450px;min-height:35px;" data-width="450px"'
                        b' data-height="35px"></div>'),
        (iframe_end, len(doc) - 1, b'<div data-ph="ads" style="min-height:50%;" data-width=""'
                                   b' data-height="50%"></div>')]
    assert (found, on, blocked) == ({"u.example"}, set(), {"yt", "ads"})
    # Python makes it: no parts for the partner, the end tag not (wholly) in the buffer, a size
    # with a reference, careful mode, a placeholder the C could not take (srcdoc)
    for doc in [b"<iframe src=//a.example.org/x></iframe>", b"<iframe src=//www.youtube.com/e>x",
                b"<iframe src=//www.youtube.com/e></iframe", b"<iframe src=//www.youtube.com/e></iframe x='>",
                b"<embed src=//www.youtube.com/e width=&#49;>",
                b"<noscript><embed src=//www.youtube.com/e></noscript>",
                b"<svg><desc><embed src=//www.youtube.com/e></desc></svg>",
                b"<iframe srcdoc=x src=//www.youtube.com/e></iframe>"]:
        found, on, blocked, edits = set(), set(), set(), []
        assert _speedups.scan_end(doc, 0, table(), found, None, on, blocked, edits, None, (),
                                  PARTS) == 0, doc
        assert (found, on, blocked, edits) == (set(), set(), set(), []), doc
    with pytest.raises(TypeError):
        _speedups.scan_end(b"", 0, table(), set(), None, set(), set(), [], None, (), [PARTS])


def test_repeated_placeholder_tags_are_judged_once_and_made_afresh(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A repeated blocked iframe (with a srcdoc document to judge) is decided once per response;
    its placeholder is still made by the plan's callback for each element, from the same
    partner and attributes, and its unknown hosts and blocked partners are recorded each time."""
    from middleware.html import decide

    calls: list[tuple[str, dict[str, str]]] = []

    def placeholder(partner: str, attrs: Mapping[str, str]) -> bytes:
        calls.append((partner, dict(attrs)))
        return f"<p>{partner}#{len(calls)}</p>".encode()

    judged = []
    real = decide.TagJudge._judge

    def counting(self: decide.TagJudge, *args: object) -> decide.TagDecision:
        judged.append(args[1])
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(decide.TagJudge, "_judge", counting)
    tag = (b'<iframe src="//www.youtube.com/e?a=1&amp;b=2" title="V" '
           b'srcdoc="&lt;img src=//x.example/i&gt;"></iframe>')
    p = RewritePlan(b"", b"", b"", frozenset(), frozenset(), frozenset(), MATCHER, placeholder)
    for mode in (contextmanager(lambda: iter([None]))(), pure()):
        calls.clear()
        judged.clear()
        with mode:
            rw = HtmlRewriter(p)
            out = rw.feed(tag + b"<hr>" + tag) + rw.finish()
        assert out == b"<p>yt#1</p><hr><p>yt#2</p>"
        assert len(calls) == 2 and calls[0] == calls[1] == ("yt", {
            "src": "//www.youtube.com/e?a=1&b=2", "title": "V",
            "srcdoc": "<img src=//x.example/i>"})
        assert judged.count("iframe") == 1
        assert rw.blocked == {"yt"} and rw.unknown_hosts == {"x.example"}
