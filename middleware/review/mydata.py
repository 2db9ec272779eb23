"""``/.consent/my-data``: what the ledger holds about the visitor who asks, and nobody else.

The only key is the consent id inside the visitor's own signed consent cookie (already
verified by the middleware): no id in the URL, no form to type one into, so one visitor
cannot ask for another's rows. Plain HTML (no script needed), in the visitor's language,
inside the site's frame; rate-limited per client; ``[site] my_data_page = false`` removes it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.responses import Response

from ..config import Config
from ..headers import client_key
from ..ledger.query import disclosure_items, open_store, subject
from ..ledger.records import ConsentEvent
from ..ui import templates
from ..ui.templates import e
from .db import Proof, ReviewDb, is_sqlite_target

if TYPE_CHECKING:
    from starlette.types import Receive, Scope

    from ..consent import Consent
    from ..ledger.store import LedgerStore
    from ..routes import ConsentUI

#: A client may load the page this many times at once, then once every REFILL seconds.
BURST = 10
REFILL = 6.0
MAX_CLIENTS = 10_000
#: Page views listed one by one (the per-partner summary counts all of them).
RECENT = 50
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "Vary": "Cookie, Accept-Language"}


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimit:
    """Token bucket per client (IPv4 address or IPv6 /64), oldest clients forgotten first."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._clients: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, client: str) -> bool:
        now = self.clock()
        bucket = self._clients.get(client)
        if bucket is None:
            bucket = self._clients[client] = _Bucket(BURST, now)
            if len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
            bucket.tokens = min(BURST, bucket.tokens + (now - bucket.at) / REFILL)
            bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


@dataclass(frozen=True)
class VisitorData:
    consent_id: str
    events: tuple[ConsentEvent, ...]
    proofs: tuple[Proof, ...]
    #: partner -> (page views, first time, last time, categories, pages)
    partners: Mapping[str, tuple[int, str, str, tuple[str, ...], tuple[str, ...]]]
    recent: tuple[tuple[str, str, tuple[str, ...]], ...]  # (time, page, partner ids), newest first
    banner_html: str | None = None
    banner_time: str | None = None


def read_visitor(store: LedgerStore, db: ReviewDb | None, consent_id: str,
                 banner: str | None) -> VisitorData:
    """Everything about one consent id, summarised for the page (runs in a worker thread)."""
    report = subject(store, consent_id)
    events = tuple(r.record for r in report.events if isinstance(r.record, ConsentEvent))
    partners: dict[str, list[Any]] = {}
    views: dict[str, tuple[str, str, list[str]]] = {}
    for row in report.disclosures:
        for d in disclosure_items(row):
            t = d.time.strftime("%Y-%m-%d %H:%M")
            entry = partners.setdefault(d.partner, [0, t, t, set(), []])
            entry[0] += 1
            entry[2] = t
            entry[3].update(d.data_categories)
            if d.path not in entry[4] and len(entry[4]) < 5:
                entry[4].append(d.path)
            view = views.setdefault(d.request_id, (t, d.path, []))
            view[2].append(d.partner)
    proofs = tuple(db.proofs(consent_id)) if db is not None else ()
    html = shown_at = None
    if banner:
        match = next((p for p in proofs if p.banner_hash == banner), None)
        stored = db.banner(banner) if db is not None and match is not None else None
        if stored is not None and match is not None:
            html, shown_at = stored.html, match.time.strftime("%Y-%m-%d %H:%M")
    recent = tuple((t, path, tuple(sorted(ps))) for t, path, ps in reversed(list(views.values())))
    return VisitorData(
        consent_id=consent_id, events=events, proofs=proofs,
        partners={k: (v[0], v[1], v[2], tuple(sorted(v[3])), tuple(v[4]))
                  for k, v in sorted(partners.items(), key=lambda kv: -kv[1][0])},
        recent=recent[:RECENT], banner_html=html, banner_time=shown_at)


class MyDataPage:
    """The endpoint, mounted by the middleware on the consent UI's routes."""

    def __init__(self, config: Config, ui: ConsentUI, target: str | None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.ui = ui
        self.target = target
        self.limit = RateLimit(clock)
        self._store: LedgerStore | None = None
        self._db: ReviewDb | None = None

    def _open(self) -> tuple[LedgerStore | None, ReviewDb | None]:
        if self.target is None:
            return None, None
        if self._store is None:
            store = open_store(self.target)
            store.open()
            self._store = store
        if self._db is None and is_sqlite_target(self.target):
            self._db = ReviewDb(self.target)
        return self._store, self._db

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._db is not None:
            self._db.close()
        self._store = self._db = None

    async def __call__(self, scope: Scope, receive: Receive, consent: Consent) -> Response:
        lang = self.ui.language(scope)
        texts = self.ui.texts(lang)
        if not self.limit.allow(client_key(scope, self.config.policy.trust_proxy)):
            return Response(texts["my_data_busy"] + "\n", 429, media_type="text/plain; charset=utf-8",
                            headers={**HEADERS, "Retry-After": str(int(REFILL))})
        data: VisitorData | None = None
        if consent.consent_id:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")[:200]))
            banner = query.get("banner")
            banner = banner if banner and len(banner) == 64 and banner.isalnum() else None
            store, db = await asyncio.to_thread(self._open)
            if store is not None:
                data = await asyncio.to_thread(read_visitor, store, db, consent.consent_id, banner)
        html = render(self.config, texts, lang, self.ui.urls, data)
        return Response(html, media_type="text/html; charset=utf-8", headers=HEADERS)


def _choices(texts: Mapping[str, str], config: Config, choices: Mapping[str, bool]) -> str:
    parts = []
    for pid, granted in choices.items():
        purpose = config.purposes.get(pid)
        if purpose is None or purpose.necessary:
            continue
        parts.append(f"{e(purpose.title)}: {e(texts['my_data_granted' if granted else 'my_data_refused'])}")
    return e(texts["list_separator"]).join(parts)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return ('<div class="cg-wrap"><table><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r)
                                               + "</tr>" for r in rows) + "</tbody></table></div>")


def banners_shown(events: Sequence[ConsentEvent], proofs: Sequence[Proof]) -> list[str | None]:
    """For each consent event, the hash of the consent screen it was given on, or None.

    A proof is written after its event's ledger record has been committed
    (``recorder.wrap``), so it may carry a later minute than the event (a commit that waited
    across :59): each event takes the first unused proof of its action from its own time on
    (a second's slack for the clock) and before the next event's time."""
    order = sorted(range(len(events)), key=lambda i: events[i].time)
    free = sorted(proofs, key=lambda p: p.time)
    out: list[str | None] = [None] * len(events)
    slack = timedelta(seconds=1)
    for rank, i in enumerate(order):
        ev = events[i]
        until = events[order[rank + 1]].time if rank + 1 < len(order) else None
        for k, proof in enumerate(free):
            if proof.time < ev.time - slack or proof.action != ev.action:
                continue
            if until is not None and proof.time >= until:
                break
            out[i] = free.pop(k).banner_hash
            break
    return out


def render(config: Config, texts: Mapping[str, str], lang: str, urls: templates.Urls,
           data: VisitorData | None) -> str:
    t = texts
    parts = [f'<h1>{e(t["my_data_title"])}</h1>', f'<p>{e(t["my_data_intro"])}</p>']
    if data is None:
        parts.append(f'<p>{e(t["my_data_none"])}</p>')
    else:
        parts.append(f'<p class="cg-meta">{e(t["consent_id"])}: <code>{e(data.consent_id)}</code></p>')
        if data.banner_html is not None:
            parts.append(f'<h2>{e(t["my_data_banner"])}</h2><p>'
                         f'{e(t["my_data_banner_shown"].replace("{date}", data.banner_time or ""))}'
                         f'</p><div class="cg-shown">{data.banner_html}</div>')
        parts.append(f'<h2>{e(t["my_data_history"])}</h2>')
        if data.events:
            shown = banners_shown(data.events, data.proofs)
            rows = []
            for ev, digest in zip(data.events, shown, strict=True):
                when = ev.time.strftime("%Y-%m-%d %H:%M")
                action = e(t.get(f"my_data_{ev.action}", ev.action))
                link = (f'<br><a href="{e(urls.prefix)}my-data?banner={e(digest)}#cg-main">'
                        f'{e(t["my_data_banner"])}</a>' if digest else "")
                rows.append([e(when), action + link, _choices(t, config, ev.choices)])
            parts.append(_table([t["my_data_when"], t["my_data_what"], t["purposes"]], rows))
        else:
            parts.append(f'<p>{e(t["my_data_no_history"])}</p>')
        parts.append(f'<h2>{e(t["my_data_received"])}</h2>')
        if data.partners:
            # One block per partner, not a wide table: it reads on a phone as on a desktop.
            for pid, (n, first, last, cats, pages) in data.partners.items():
                partner = config.partners.get(pid)
                link = (f' \u00b7 <a href="{e(partner.privacy_url)}" rel="noopener noreferrer">'
                        f'{e(t["privacy_policy"])}</a>'
                        if partner is not None and partner.privacy_url else "")
                labels = t["list_separator"].join(templates.data_label(t, c) for c in cats)
                span = e(first) if first == last else f"{e(first)} \u2013 {e(last)}"
                parts.append(
                    f'<section class="cg-partner" id="partner-{e(pid)}">'
                    f'<h3>{e(partner.name if partner else pid)}</h3><dl>'
                    f'<dt>{e(t["my_data_views"])}</dt><dd>{n:,} ({span}){link}</dd>'
                    f'<dt>{e(t["my_data_categories"])}</dt><dd>{e(labels)}</dd>'
                    f'<dt>{e(t["my_data_page"])}</dt>'
                    f'<dd>{e(t["list_separator"]).join(e(p) for p in pages)}</dd></dl></section>')
            parts.append(f'<h2>{e(t["my_data_recent"])}</h2>')
            rows = [[e(when), e(path), e(", ".join(
                (config.partners[p].name if p in config.partners else p) for p in ps))]
                for when, path, ps in data.recent]
            parts.append(_table([t["my_data_when"], t["my_data_page"], t["partners"]], rows))
        else:
            parts.append(f'<p>{e(t["my_data_nothing_received"])}</p>')
    contact = config.site.contact
    parts.append("<p>" + (e(t["my_data_ask"]).replace("{contact}", templates.contact_html(contact))
                          if contact else e(t["my_data_ask_no_contact"])) + "</p>")
    parts.append(f'<p><a href="{e(urls.preferences)}">{e(t["privacy_choices"])}</a> \u00b7 '
                 f'<a href="{e(urls.partners)}">{e(t["partners_link"])}</a></p>')
    return templates.page(lang, t["my_data_title"], urls, "".join(parts), config=config, texts=t)
