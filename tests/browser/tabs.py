"""Many page views side by side: a few tabs of one context, each held open for its own time.

The vector tests (fetch, header, encoding) visit dozens of pages and then read what reached
the recording proxy, each partner URL naming the page it came from (``/{who}/{name}/...``),
so a request is put down to its own page whenever it arrives. Visited one after the other,
each page's hold (the 1 s meta refresh, the 0.3 s for late fetches) was paid in series: about
two minutes of the browser stage. Here a few tabs take the pages in turn, and a tab leaves
its page only when that page's own hold has passed (or, for a page that must fetch, as soon
as what it must fetch has reached the proxy), so every page still gets the time it had.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

__all__ = ["TabVisit", "visit_in_tabs"]


@dataclass(frozen=True)
class TabVisit:
    """One page view. The tab closes ``hold`` seconds after the page's load event, or as soon
    as ``until()`` is true (a page expected to fetch: its fetches have been seen). A page that
    must *not* fetch has no ``until``: it is watched for its whole hold.

    ``wait_until="commit"`` for a page whose script navigates away at once (submits a form,
    sets ``location``): ``goto(wait_until="load")`` never returns for it when the proxy's 204
    leaves the page where it was, and sits out its whole timeout (10 s a page). Such a page is
    awaited in the page instead (``document.readyState``), as test_csp_leaks.visit_quietly."""

    url: str
    hold: float
    until: Callable[[], bool] | None = None
    on_load: Callable[[Page], None] | None = None
    wait_until: Literal["load", "commit"] = "load"


@dataclass
class _Tab:
    page: Page
    visit: TabVisit | None = None
    loaded: float = 0.0

    def finished(self, now: float) -> bool:
        if self.visit is None or now - self.loaded >= self.visit.hold:
            return True
        return self.visit.until is not None and self.visit.until()


def visit_in_tabs(context: BrowserContext, visits: Iterable[TabVisit], *, width: int = 6,
                  timeout: float = 10_000) -> None:
    """Load each visit in one of ``width`` tabs of ``context``, a tab taking the next visit
    once its current one is finished (see TabVisit); the tabs are closed at the end. A
    navigation that fails (a refresh to the partner that the proxy refuses) is no error: what
    counts is what the proxy saw."""
    tabs: list[_Tab] = []

    def free_tab() -> _Tab:
        while True:
            now = time.monotonic()
            for tab in tabs:
                if tab.finished(now):
                    return tab
            if len(tabs) < width:
                page = context.new_page()
                page.set_default_timeout(timeout)
                tabs.append(_Tab(page))
                return tabs[-1]
            tabs[0].page.wait_for_timeout(20)  # lets playwright dispatch events

    try:
        for visit in visits:
            tab = free_tab()
            tab.visit = None
            with contextlib.suppress(Exception):
                tab.page.goto(visit.url, wait_until=visit.wait_until)
                if visit.wait_until == "commit":
                    tab.page.wait_for_function("document.readyState === 'complete'")
            if visit.on_load is not None:
                with contextlib.suppress(Exception):
                    visit.on_load(tab.page)
            tab.visit, tab.loaded = visit, time.monotonic()
        while not all(tab.finished(time.monotonic()) for tab in tabs):
            tabs[0].page.wait_for_timeout(20)
    finally:
        for tab in tabs:
            with contextlib.suppress(Exception):
                tab.page.close()
