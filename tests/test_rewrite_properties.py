"""Properties of the rewriter: chunking never matters, an empty plan changes nothing, and no
blocked partner URL survives in a live tag (checked by an independent parser, html.parser)."""

from __future__ import annotations

from collections.abc import Mapping
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.hosts import HostMatcher
from middleware.rewrite import HtmlRewriter, RewritePlan
from tests.support.budget import examples

CORPUS = Path(__file__).parent / "corpus"
PARTNERS = {
    "ads": ["pagead2.googlesyndication.com", "*.doubleclick.net"],
    "yt": ["www.youtube.com", "www.youtube-nocookie.com", "i.ytimg.com"],
    "fb": ["connect.facebook.net", "www.facebook.com"],
    "gtm": ["www.googletagmanager.com"],
    "tw": ["platform.twitter.com"],
}
MATCHER = HostMatcher(PARTNERS)
URL_ATTRS = {"script": {"src"}, "iframe": {"src"}, "img": {"src", "srcset"},
             "link": {"href"}, "embed": {"src"}, "object": {"data"}, "source": {"src", "srcset"},
             "video": {"src", "poster"}, "audio": {"src"}}
INERT_CONTENT = {"textarea", "title", "xmp", "iframe", "noembed", "noframes", "style", "script"}


def placeholder(partner: str, attrs: Mapping[str, str]) -> bytes:
    return f'<div class="consent-placeholder" data-partner="{partner}"></div>'.encode()


def make_plan(allowed: frozenset[str] = frozenset(), granted: frozenset[str] = frozenset(),
              matcher: HostMatcher = MATCHER, inject: bool = False) -> RewritePlan:
    return RewritePlan(
        head_end=b"<!--H-->" if inject else b"", body_start=b"<!--S-->" if inject else b"",
        body_end=b"<!--E-->" if inject else b"", injected_partners=frozenset(),
        allowed_partners=allowed, granted_purposes=granted, matcher=matcher,
        placeholder=placeholder,
    )


def run(plan: RewritePlan, chunks: list[bytes]) -> bytes:
    rw = HtmlRewriter(plan)
    return b"".join(rw.feed(c) for c in chunks) + rw.finish()


class LiveUrlChecker(HTMLParser):
    """Collects (tag, attr, partner) for every live URL attribute pointing at a blocked partner."""

    def __init__(self, allowed: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.allowed = allowed
        self.inert: str | None = None
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.inert is not None:
            return
        names = {k for k, _ in attrs}
        kinds = URL_ATTRS.get(tag, set())
        inert_script = tag == "script" and any(
            k == "type" and (v or "").strip().lower() == "text/plain" for k, v in attrs)
        for k, v in attrs:
            if k not in kinds or v is None or inert_script:
                continue
            if tag == "link" and not ({"rel"} & names):
                continue
            for url in v.replace(",", " ").split() if k == "srcset" else [v]:
                pid = MATCHER.partner_for_url(url)
                if pid is not None and pid not in self.allowed:
                    self.found.append((tag, k, pid))
        if tag in INERT_CONTENT:
            self.inert = tag

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # A browser ignores "/>" on a non-void element: "<script/>" still starts script data
        # (html.parser would end the element at once and read the script text as markup).
        self.handle_starttag(tag, attrs)
        if tag in ("script", "style"):
            self.set_cdata_mode(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == self.inert:
            self.inert = None


def live_blocked(html: bytes, allowed: frozenset[str]) -> list[tuple[str, str, str]]:
    checker = LiveUrlChecker(allowed)
    checker.feed(html.decode("utf-8", "replace"))
    checker.close()
    return checker.found


# --- corpus -----------------------------------------------------------------------------------

# page -> (neutralised tags, placeholders, unknown hosts) when every partner is blocked
CORPUS_EXPECT = {
    "news.html": (5, 1, {"cdn.jsdelivr.net"}),
    "blog.html": (2, 2, set()),
    "partial.html": (1, 1, set()),
}


@pytest.mark.parametrize("name", sorted(CORPUS_EXPECT))
def test_corpus_empty_plan_is_byte_identity(name: str) -> None:
    doc = (CORPUS / name).read_bytes()
    empty = make_plan(matcher=HostMatcher({}))
    assert run(empty, [doc]) == doc
    assert run(make_plan(allowed=frozenset(PARTNERS)), [doc]) == doc


@pytest.mark.parametrize("name", sorted(CORPUS_EXPECT))
def test_corpus_blocked_partners_do_not_survive(name: str) -> None:
    doc = (CORPUS / name).read_bytes()
    assert live_blocked(doc, frozenset(PARTNERS)) == []
    assert live_blocked(doc, frozenset()), "the page must contain partner tags to block"
    plan = make_plan()
    rw = HtmlRewriter(plan)
    out = rw.feed(doc) + rw.finish()
    assert live_blocked(out, frozenset()) == []
    neutralised, placeholders, unknown = CORPUS_EXPECT[name]
    assert out.count(b"data-consent-partner=") == neutralised
    assert out.count(b"consent-placeholder") == placeholders
    assert rw.unknown_hosts == unknown
    for size in (1, 7, 64, 1000):
        assert run(plan, [doc[i : i + size] for i in range(0, len(doc), size)]) == out


def test_corpus_news_keeps_inert_lookalikes() -> None:
    doc = (CORPUS / "news.html").read_bytes()
    out = run(make_plan(), [doc])
    for kept in (b"document.write(\"<img src='https://ad.doubleclick.net/px'>\")",
                 b'title="<script src=https://ad.doubleclick.net/fake.js>"',
                 b"/* </head> in CSS is not an end tag */",
                 b"<!-- Google Tag Manager (noscript) -->"):
        assert kept in out


def test_corpus_blog_opt_in_activates_only_with_consent() -> None:
    doc = (CORPUS / "blog.html").read_bytes()
    out = run(make_plan(allowed=frozenset({"yt", "tw"}), granted=frozenset({"social"})), [doc])
    assert b'<iframe data-consent="social" src="https://www.youtube-nocookie.com/embed/xyz"' in out
    assert (b'<script data-consent="social" src="https://platform.twitter.com/widgets.js"'
            in out)
    out = run(make_plan(allowed=frozenset({"yt"}), granted=frozenset({"social"})), [doc])
    assert b'data-consent-src="https://platform.twitter.com/widgets.js"' in out


# --- generated documents ----------------------------------------------------------------------

URLS = ["https://pagead2.googlesyndication.com/a.js", "//AD.DoubleClick.net/x", "/local.js",
        "https://cdn.example.org/lib.js", "https&#58;//www.youtube.com/embed/1",
        "HTTPS://CONNECT.FACEBOOK.NET/en/fb.js", "data:,x", "?q=1&amp;r=2"]
QUOTES = ['"{}"', "'{}'", "{}"]
TEXTS = ["hello ", "a < b ", "x > y ", "&amp; ", "don't ", '"q" ', "\n", "</ p>", "<3 "]
SCRIPT_BODIES = ['var s = "<iframe src=//www.youtube.com/embed/1>";',
                 "if (a<b && c>d) x();", "document.write('<scr'+'ipt src=//ad.doubleclick.net/y>');",
                 "/* </head> */", ""]


@st.composite
def url_tag(draw: st.DrawFn) -> str:
    tag = draw(st.sampled_from(sorted(URL_ATTRS)))
    attr = draw(st.sampled_from(sorted(URL_ATTRS[tag])))
    url = draw(st.sampled_from(URLS))
    quoted = draw(st.sampled_from(QUOTES)).format(url if " " not in url else f'"{url}"')
    if quoted == url and url.endswith("/"):
        quoted = f'"{url}"'
    name = draw(st.sampled_from([tag, tag.upper()]))
    extra = draw(st.sampled_from(["", ' class="a"', " async", ' title="<b>x</b>"', " /"]))
    rel = ' rel="preload"' if tag == "link" else ""
    opening = f"<{name}{rel} {draw(st.sampled_from([attr, attr.upper()]))}={quoted}{extra}>"
    if tag in ("script", "iframe", "video", "audio", "object"):
        body = draw(st.sampled_from(SCRIPT_BODIES)) if tag == "script" else "fallback"
        return f"{opening}{body}</{name}>"
    return opening


piece = st.one_of(
    st.sampled_from(TEXTS),
    url_tag(),
    st.sampled_from(["<p>", "</p>", "<div class='c'>", "</div>", '<span title="a>b">',
                     "<template>", "</template>", "<noscript>", "</noscript>",
                     "<html>", "<head>", "</head>", "<body class=x>", "</body>",
                     "<!DOCTYPE html>", "<br/>", '<a href="https://www.youtube.com/">yt</a>']),
    st.builds(lambda u: f"<!-- <script src={u}></script> -->", st.sampled_from(URLS)),
    st.builds(lambda b: f"<script>{b}</script>", st.sampled_from(SCRIPT_BODIES)),
    st.builds(lambda u: f"<textarea><img src={u}></textarea>", st.sampled_from(URLS)),
    st.builds(lambda u: f'<img data-consent="ads" data-consent-src="{u}">', st.sampled_from(URLS)),
    st.builds(lambda u: f'<script type="text/plain" data-consent="ads" data-consent-src="{u}">'
                        "</script>", st.sampled_from(URLS)),
)
documents = st.lists(piece, max_size=25).map(lambda ps: "".join(ps).encode())
partner_sets = st.frozensets(st.sampled_from(sorted(PARTNERS)))


def split(doc: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(doc) + 1) for c in cuts})
    bounds = [0, *points, len(doc)]
    return [doc[a:b] for a, b in pairwise(bounds)]


@settings(max_examples=examples(300), deadline=None)
@given(documents, st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
       partner_sets, st.booleans())
def test_chunking_never_changes_the_output(doc: bytes, cuts: list[int], allowed: frozenset[str],
                                           inject: bool) -> None:
    plan = make_plan(allowed=allowed, granted=frozenset({"ads"}), inject=inject)
    whole = run(plan, [doc])
    assert run(plan, split(doc, cuts)) == whole
    assert run(plan, [doc[i : i + 1] for i in range(len(doc))]) == whole


@settings(max_examples=examples(300), deadline=None)
@given(documents, st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_empty_plan_is_identity(doc: bytes, cuts: list[int]) -> None:
    assert run(make_plan(matcher=HostMatcher({})), split(doc, cuts)) == doc


@settings(max_examples=examples(300), deadline=None)
@given(documents, partner_sets, st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_no_live_url_of_a_blocked_partner_survives(doc: bytes, allowed: frozenset[str],
                                                   cuts: list[int]) -> None:
    out = run(make_plan(allowed=allowed, granted=frozenset({"ads"})), split(doc, cuts))
    assert live_blocked(out, allowed) == []


@settings(max_examples=examples(200), deadline=None)
@given(documents)
def test_allowing_every_partner_changes_nothing_but_opt_in(doc: bytes) -> None:
    assert run(make_plan(allowed=frozenset(PARTNERS)), [doc]) == doc
