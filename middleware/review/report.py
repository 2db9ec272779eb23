"""The partner-log report: one self-contained HTML file (inline CSS and SVG, no script, no
external request; its own CSP says so), readable on screen and printed to PDF.

``render(data, config) -> str`` is pure; the CLI gathers ``data`` (facts.collect) and writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html import escape

from ..config import Config
from . import charts
from .facts import OUTCOMES, Rates, ReportData, headline_purpose
from .suggest import suggestions

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
:root { color-scheme: light; --ink: #1b1b1b; --muted: #5a5a5a; --rule: #d6d6d6; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 60rem; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; padding-top: .75rem; border-top: 1px solid var(--rule); }
h3 { font-size: 1rem; margin: 1.25rem 0 .25rem; }
.lede { font-size: 1.2rem; line-height: 1.45; margin: 1rem 0 1.25rem; }
.meta, .note { color: var(--muted); font-size: .875rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .875rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--rule); vertical-align: top; }
th { font-weight: 600; background: #f4f4f4; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.wrap { overflow-x: auto; }
figure { margin: .5rem 0 1rem; overflow-x: auto; }
td.d { white-space: nowrap; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .8rem; }
.ok { color: #1b5e20; font-weight: 600; } .bad { color: #b71c1c; font-weight: 600; }
pre { background: #f6f6f6; padding: .6rem .75rem; overflow-x: auto; font-size: .8rem;
      white-space: pre-wrap; word-break: break-word; }
.yes { text-align: center; }
@media (max-width: 40rem) { body { font-size: 14px; padding: 1rem .75rem; } .lede { font-size: 1.05rem; }
  figure svg { min-width: 34rem; } }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  /* No ligatures: text copied or extracted from the PDF reads "fi", not one glyph. */
  body { max-width: none; padding: 0; font-size: 10.5pt; font-variant-ligatures: none; }
  h2 { break-after: avoid; } figure, table, pre { break-inside: avoid; }
  .wrap { overflow: visible; }
  a { color: inherit; text-decoration: none; }
}
"""


def e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct(x: float) -> str:
    return f"{round(x * 100):d} %"


def _period(data: ReportData) -> tuple[str, str]:
    start = data.since.date() if data.since else data.first_day
    end = (data.until - timedelta(microseconds=1)).date()
    if start is None:
        return "", end.isoformat()
    return start.isoformat(), end.isoformat()


def _period_words(data: ReportData) -> str:
    start, end = _period(data)
    if not start:
        return "So far"
    s, t = datetime.fromisoformat(start), datetime.fromisoformat(end)
    if s.year == t.year and s.month == t.month and s.day == 1 and (t + timedelta(days=1)).day == 1:
        return f"In {s:%B %Y}"
    if start == end:
        return f"On {s:%-d %B %Y}"
    return f"From {s:%-d %B %Y} to {t:%-d %B %Y}"


def summary_sentence(data: ReportData, config: Config | None) -> str:
    """The report's first sentence, in plain words."""
    n = len(data.partners)
    sentence = (f"{_period_words(data)}, {n:,} partner{'s' if n != 1 else ''} received data "
                f"from {data.page_views:,} page view{'s' if data.page_views != 1 else ''}")
    purpose = headline_purpose(data, config)
    if purpose is not None and data.visitors_decided:
        title = data.purpose_titles.get(purpose, purpose).lower()
        sentence += (f"; {_pct(data.refusals[purpose])} of the {data.visitors_decided:,} "
                     f"visitors who made a choice refused {title}")
    return sentence + "."


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (),
           dates: Sequence[int] = ()) -> str:
    def cell(tag: str, i: int, v: str) -> str:
        cls = ' class="n"' if i in numeric else ' class="d"' if i in dates else ""
        return f"<{tag}{cls}>{v}</{tag}>"

    out = ["<div class='wrap'><table><thead><tr>",
           "".join(cell("th", i, e(h)) for i, h in enumerate(head)), "</tr></thead><tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{e(caption)}</figcaption></figure>"


def _rates_table(title: str, rates: Mapping[str, Rates]) -> str:
    rows = [[e(k), f"{v.total:,}", *(_pct(v.share(o)) for o in OUTCOMES)] for k, v in rates.items()]
    return _table([title, "decisions", *OUTCOMES], rows, numeric=range(1, 6))


def _weekly(per_day: Mapping[str, Rates]) -> dict[str, Rates]:
    """Per-day rates summed per ISO week (Monday first): 5 rows for a month, not 30."""
    weeks: dict[str, dict[str, int]] = {}
    for day, rates in sorted(per_day.items()):
        d = datetime.fromisoformat(day)
        monday = (d - timedelta(days=d.weekday())).date().isoformat()
        week = weeks.setdefault(monday, {})
        for o, n in rates.counts.items():
            week[o] = week.get(o, 0) + n
    return {k: Rates(v) for k, v in weeks.items()}


def _shares(rates: Mapping[str, Rates]) -> dict[str, dict[str, float]]:
    return {k: {o: v.share(o) for o in OUTCOMES} for k, v in rates.items()}


def render(data: ReportData, config: Config | None, *, generated: datetime | None = None,
           command: str = "consent-gate report") -> str:
    generated = generated or datetime.now(UTC)
    start, end = _period(data)
    days = data.days()
    site = config.source if config else "the ledger"
    parts: list[str] = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{REPORT_CSP}\">",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>Partner log report {e(start)} &ndash; {e(end)}</title><style>{_CSS}</style></head><body>",
        "<header><h1>Who received data from this site</h1>",
        f"<p class='meta'>Period {e(start or 'first record')} &ndash; {e(end)} (UTC) · configuration "
        f"{e(site)} · generated {e(generated.strftime('%Y-%m-%d %H:%M UTC'))}</p></header>",
        f"<p class='lede' id='summary'>{e(summary_sentence(data, config))}</p>",
    ]

    # 1. disclosures per partner per day
    parts.append("<section id='disclosures'><h2>1. Disclosures per partner and day</h2>")
    if data.partners:
        series = {p.partner: [p.per_day.get(d, 0) for d in days] for p in data.partners}
        parts.append(_figure(charts.stacked_days(days, series, "Page views per partner and day",
                                                 ylabel="disclosures"),
                             "One segment per partner: the page views on which its tags were "
                             "enabled, per day (UTC)."))
        parts.append(_table(
            ["partner", "page views", "first day", "last day", "busiest day"],
            [[e(p.name) + (f" <span class='meta'>({e(p.partner)})</span>"
                           if p.name != p.partner else ""),
              f"{p.page_views:,}", e(min(p.per_day)), e(max(p.per_day)),
              f"{max(p.per_day.values()):,}"] for p in data.partners], numeric=(1, 4),
            dates=(2, 3)))
        parts.append(f"<p class='note'>{data.visitors:,} distinct consent ids saw a partner "
                     "(visitors without a choice have none and are not counted there).</p>")
    else:
        parts.append("<p>No partner received data in this period.</p>")
    parts.append("</section>")

    # 2. data categories per partner
    parts.append("<section id='categories'><h2>2. Data categories per partner</h2>")
    cats = sorted({c for p in data.partners for c in p.data_categories})
    if data.partners and cats:
        rows = [[e(p.name), e(", ".join(p.purposes)),
                 *("✓" if c in p.data_categories else "" for c in cats),
                 (f"<a href='{e(p.privacy_url)}'>{e(p.privacy_url)}</a>" if p.privacy_url else "")]
                for p in data.partners]
        parts.append(_table(["partner", "purposes", *(c.replace("_", " ") for c in cats),
                             "privacy policy"], rows))
    else:
        parts.append("<p>None.</p>")
    parts.append("</section>")

    # 3. consent decisions
    parts.append("<section id='decisions'><h2>3. Consent decisions</h2>")
    total = sum(r.total for r in data.decisions_per_day.values())
    if total:
        series = {o: [data.decisions_per_day[d].counts.get(o, 0) if d in data.decisions_per_day
                      else 0 for d in days] for o in OUTCOMES}
        parts.append(_figure(charts.stacked_days(days, series, "Consent decisions per day",
                                                 charts.OUTCOME_COLOURS, "decisions"),
                             "Accept all, reject all, a custom choice, or a withdrawal, per day."))
        parts.append("<h3>Per week</h3>")
        parts.append(_rates_table("week starting", _weekly(data.decisions_per_day)))
        parts.append("<h3>Per policy version</h3>")
        parts.append(_rates_table("policy version", data.decisions_per_version))
        if data.decisions_per_banner:
            parts.append("<h3>Per banner version</h3>")
            parts.append(_figure(charts.share_bars(_shares(data.decisions_per_banner), OUTCOMES,
                                                   "Decisions per banner version",
                                                   charts.OUTCOME_COLOURS),
                                 "Each banner version is the hash of the exact HTML shown "
                                 "(consent-gate log subject ID lists them, log banner HASH prints one)."))
            parts.append(_rates_table("banner (hash)", data.decisions_per_banner))
        if data.decisions_per_jurisdiction:
            parts.append("<h3>Per jurisdiction</h3>")
            parts.append(_rates_table("jurisdiction", data.decisions_per_jurisdiction))
    else:
        parts.append("<p>No consent decision in this period.</p>")
    parts.append("</section>")

    # 4. GPC
    parts.append("<section id='gpc'><h2>4. Global Privacy Control</h2>")
    gpc, plain = data.gpc.get("gpc"), data.gpc.get("no-gpc")
    decided = (gpc.total if gpc else 0) + (plain.total if plain else 0)
    if decided:
        share = (gpc.total if gpc else 0) / decided
        parts.append(f"<p>{_pct(share)} of the decisions ({gpc.total if gpc else 0:,} of "
                     f"{decided:,}) came from browsers sending GPC. GPC turns off every purpose "
                     "marked as sale or sharing, whatever the visitor clicks.</p>")
        parts.append(_rates_table("signal", data.gpc))
    else:
        parts.append("<p>No decision with a recorded GPC signal in this period.</p>")
    parts.append("</section>")

    # 5. ledger health
    h = data.health
    parts.append("<section id='health'><h2>5. Ledger health</h2>")
    if h.ok is None:
        verdict = "<p>Not verified for this report (<code>--no-verify</code>).</p>"
    elif h.ok:
        verdict = (f"<p class='ok'>Verified: every hash chain is intact ({h.rows:,} records, "
                   f"{h.writers} writer chain(s), {h.checkpoints} purge checkpoint(s)).</p>")
    else:
        verdict = (f"<p class='bad'>BROKEN: {h.problems} problem(s) in {h.rows:,} records; "
                   f"first: {e(h.first_problem or '')}</p>")
    parts.append(verdict)
    parts.append(f"<p>Last signed head: {e(h.last_head) if h.last_head else 'none recorded'}.</p>")
    parts.append("</section>")

    # 6. discovery
    parts.append("<section id='discovered'><h2>6. Undeclared hosts and cookies</h2>")
    if data.discovered:
        parts.append(_table(
            ["kind", "name", "seen", "first seen", "last seen", "example pages"],
            [[e(d.kind), e(d.name), f"{d.count:,}", e(d.first_seen[:16].replace("T", " ")),
              e(d.last_seen[:16].replace("T", " ")), e(", ".join(d.examples))]
             for d in data.discovered], numeric=(2,), dates=(3, 4)))
        blocks = "\n\n".join(block for _site, block in suggestions(data.discovered, config))
        parts.append("<h3>Suggested partners.toml entries</h3>")
        parts.append(f"<pre>{e(blocks)}</pre>")
    else:
        parts.append("<p>None seen: every third party the pages load is declared.</p>")
    parts.append("</section>")

    parts.append(f"<footer><p class='meta'>Made with <code>{e(command)}</code>. Times are UTC. "
                 "The ledger holds one tamper-evident record per disclosure; this report "
                 "counts them.</p></footer></body></html>")
    return "".join(parts)
