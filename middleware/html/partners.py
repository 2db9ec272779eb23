"""Which partner a URL names, for one response's plan: its host read as a browser reads it,
then the host table. Remembered per response, and ``host_of_url`` across responses."""

from __future__ import annotations

from ..hosts import HostMatcher
from .fetch import UNREADABLE

#: Bound on each URL memo (per response, and the shared host memo).
_URL_MEMO = 4096
#: URL -> HostMatcher.host_of_url(URL), shared by all responses (bounded by _URL_MEMO).
_HOST_OF_URL: dict[str, str | None] = {}


class PartnerLookup:
    """URL -> partner id for one matcher; pages repeat their URLs."""

    __slots__ = ("_hosts", "matcher")

    def __init__(self, matcher: HostMatcher) -> None:
        self.matcher = matcher
        self._hosts: dict[str, tuple[str | None, str | None]] = {}

    def partner(self, url: str, unknown: set[str]) -> str | None:
        """The partner id of ``url`` (UNREADABLE when its host cannot be read), or None; a
        host that matches no partner is added to ``unknown``."""
        hosts = self._hosts
        try:
            host, pid = hosts[url]
        except KeyError:
            matcher = self.matcher
            if type(matcher) is HostMatcher:
                # host_of_url is a pure function of the URL: its result is shared by every
                # response (unique pages still repeat their partners' script and ad URLs).
                try:
                    host = _HOST_OF_URL[url]
                except KeyError:
                    host = HostMatcher.host_of_url(url)
                    if len(_HOST_OF_URL) >= _URL_MEMO:
                        _HOST_OF_URL.clear()
                    _HOST_OF_URL[url] = host
            else:
                host = matcher.host_of_url(url)
            if host is None:
                pid = None
            elif not host.isascii():  # undecodable bytes or an invalid IDN: fail closed
                pid = UNREADABLE
            else:
                pid = matcher.partner_for_host(host)
            if len(hosts) >= _URL_MEMO:
                hosts.clear()
            hosts[url] = host, pid
        if host is not None and pid is None:
            unknown.add(host)
        return pid
