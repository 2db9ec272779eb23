from __future__ import annotations

import pytest

from middleware.hosts import HostMatcher

PARTNERS = {
    "adsense": ["pagead2.googlesyndication.com", "*.doubleclick.net"],
    "special": ["stats.g.doubleclick.net"],
    "deep": ["*.eu.doubleclick.net"],
    "yt": ["www.youtube.com"],
}


@pytest.fixture
def matcher() -> HostMatcher:
    return HostMatcher(PARTNERS)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://pagead2.googlesyndication.com/pagead/js/a.js", "pagead2.googlesyndication.com"),
        ("http://Ad.DoubleClick.NET/x", "ad.doubleclick.net"),
        ("//www.youtube.com/embed/1", "www.youtube.com"),
        ("HTTPS://WWW.YOUTUBE.COM:443/embed", "www.youtube.com"),
        ("https://user:pw@www.youtube.com/x", "www.youtube.com"),
        ("https://a@b@www.youtube.com/x", "www.youtube.com"),
        ("https://www.youtube.com./x", "www.youtube.com"),
        ("  https://www.youtube.com/x  ", "www.youtube.com"),
        ("\thttps://www.you\ntube.com/x", "www.youtube.com"),
        ("https:\\\\www.youtube.com\\x", "www.youtube.com"),
        ("/\\www.youtube.com/x", "www.youtube.com"),
        ("///www.youtube.com/x", "www.youtube.com"),
        ("https:www.youtube.com/x", "www.youtube.com"),
        ("https://www%2Eyoutube.com/x", "www.youtube.com"),
        ("https://\uff57ww.youtube.com/x", "www.youtube.com"),
        ("https://www.youtube.com?x=1", "www.youtube.com"),
        ("https://www.youtube.com#frag", "www.youtube.com"),
        ("wss://www.youtube.com/socket", "www.youtube.com"),
        ("https://[::1]:8080/x", "[::1]"),
    ],
)
def test_host_of_url_reads_urls_like_a_browser(url: str, host: str) -> None:
    assert HostMatcher.host_of_url(url) == host


@pytest.mark.parametrize(
    "url",
    ["/static/app.js", "app.js", "./x", "../x", "?q=1", "#top", "", "   ",
     "data:text/html,<script>", "javascript:alert(1)", "blob:https://www.youtube.com/uuid",
     "mailto:a@www.youtube.com", "about:blank"],
)
def test_host_of_url_is_none_for_relative_and_non_network_urls(url: str) -> None:
    assert HostMatcher.host_of_url(url) is None


@pytest.mark.parametrize(
    ("host", "partner"),
    [
        ("pagead2.googlesyndication.com", "adsense"),
        ("googlesyndication.com", None),
        ("doubleclick.net", "adsense"),  # *.x includes x itself
        ("ad.doubleclick.net", "adsense"),
        ("a.b.doubleclick.net", "adsense"),
        ("stats.g.doubleclick.net", "special"),  # exact beats wildcard
        ("x.eu.doubleclick.net", "deep"),  # longer wildcard beats shorter
        ("eu.doubleclick.net", "deep"),
        ("notdoubleclick.net", None),
        ("doubleclick.net.evil.com", None),
        ("WWW.YOUTUBE.COM.", "yt"),
        ("youtube.com", None),
        ("", None),
    ],
)
def test_partner_for_host_most_specific_pattern_wins(
    matcher: HostMatcher, host: str, partner: str | None
) -> None:
    assert matcher.partner_for_host(host) == partner


def test_partner_for_url_combines_both(matcher: HostMatcher) -> None:
    assert matcher.partner_for_url("//STATS.G.DOUBLECLICK.NET/r") == "special"
    assert matcher.partner_for_url("https://example.com/x") is None
    assert matcher.partner_for_url("/relative") is None


def test_host_of_url_works_on_instances_too(matcher: HostMatcher) -> None:
    assert matcher.host_of_url("//www.youtube.com/") == "www.youtube.com"


def test_partners_in_text_finds_declared_hosts(matcher: HostMatcher) -> None:
    text = '<script src="HTTPS://PAGEAD2.GOOGLESYNDICATION.COM/x.js"></script>'
    assert matcher.partners_in_text(text) == {"adsense"}
    assert matcher.partners_in_text("nothing here") == set()
