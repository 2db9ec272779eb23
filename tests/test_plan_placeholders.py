"""``RewritePlan.placeholder_parts`` (what the native pass makes placeholders from) agrees with
``RewritePlan.placeholder`` (the reference): for every partner, language and charset of the
example site's plans, ``placeholder(pid, attrs) == head + placeholder_size(attrs) + tail``; and a
page of blocked embeds is rewritten to the same bytes with the native pass as without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from middleware.config import load_config
from middleware.consent import ConsentCodec, ConsentResolver
from middleware.hosts import HostMatcher
from middleware.html import native
from middleware.plan import PlanBuilder, language_of_scope
from middleware.rewrite import HtmlRewriter, RewritePlan
from middleware.routes import ConsentUI
from middleware.ui.templates import placeholder_size

from .test_routes import KEY

JAPAN = Path(__file__).resolve().parent.parent / "examples/japan_talk/partners.toml"
SIZES = [{}, {"width": "300"}, {"height": "35", "width": "100%"}, {"width": " 12.5px "},
         {"width": "x", "height": "1e3"}, {"width": "450", "height": "35", "src": "//x.example/"},
         {"width": "\u0663", "height": "7 px"}]


def plans(accept: str, charset: str | None) -> tuple[RewritePlan, RewritePlan]:
    config = load_config(JAPAN)
    ui = ConsentUI(config, ConsentResolver(config, ConsentCodec([KEY], max_age_seconds=60)))
    builder = PlanBuilder(config, HostMatcher({p.id: p.hosts for p in config.partners.values()}), ui)
    consent = ui.resolver.resolve(None, signal=False)
    scope = {"type": "http", "headers": [(b"accept-language", accept.encode())]}
    language = language_of_scope(scope)
    return (builder.plan(consent, frozenset(), language, charset),
            builder.plan(consent, frozenset(config.partners), language, charset))


@pytest.mark.parametrize("accept", ["en", "ja-JP,ja;q=0.9", "fr"])
@pytest.mark.parametrize("charset", ["utf-8", None, "shift_jis"])
def test_placeholder_parts_are_the_placeholder_around_its_size(accept: str,
                                                               charset: str | None) -> None:
    for plan in plans(accept, charset):
        parts = plan.placeholder_parts
        assert parts is not None and set(parts) == set(load_config(JAPAN).partners)
        for pid, (head, tail) in parts.items():
            for attrs in SIZES:
                assert plan.placeholder(pid, attrs) == head + placeholder_size(attrs).encode() + tail


EMBEDS = (b'<p><iframe src="https://www.facebook.com/plugins/like.php?href=x&amp;width=450" '
          b'width="450" height="35" title="Like"></iframe>'
          b'<iframe width="560" height="315" src="https://www.youtube.com/embed/M7lc1UVf-VE" '
          b"allowfullscreen>fallback <img src=//ad.doubleclick.net/x></iframe >"
          b'<embed src="https://www.youtube.com/v/x" width=" 100% " height=50.5px>'
          b"<iframe src=https://www.youtube.com/embed/y width=&#49;0></iframe></p>")


@pytest.mark.parametrize("charset", ["utf-8", "shift_jis"])
@pytest.mark.parametrize("chunk", [1 << 20, 7, 64])
def test_placeholders_are_the_same_with_and_without_the_native_pass(charset: str,
                                                                    chunk: int) -> None:
    if native.scan_end is None:
        pytest.skip("the native pass is not in use")
    blocked, _ = plans("ja-JP,ja;q=0.9", charset)
    results = []
    for scan in (native.scan_end, None):
        saved, native.scan_end = native.scan_end, scan
        try:
            rw = HtmlRewriter(blocked)
            out = b"".join(rw.feed(EMBEDS[i : i + chunk]) for i in range(0, len(EMBEDS), chunk))
            results.append((out + rw.finish(), rw.take_enabled(), rw.blocked, rw.unknown_hosts))
        finally:
            native.scan_end = saved
    assert results[0] == results[1]
    assert results[0][0].count(b"consent-gate-placeholder") == 4
