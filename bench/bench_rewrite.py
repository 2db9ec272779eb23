"""Benchmark the streaming HTML rewriter.

    .venv/bin/python bench/bench_rewrite.py            # our scanner: 30 KB, 1 MB, 50 MB streamed
    .venv/bin/python bench/bench_rewrite.py --compare  # plus python-lolhtml doing the same job
    .venv/bin/python bench/bench_rewrite.py --skip-both  # C skip and regex skip side by side
    .venv/bin/python bench/bench_rewrite.py --native-both  # native pass and C skip side by side
    .venv/bin/python bench/bench_rewrite.py --pure     # regex skip only (as without the C build)

Prints page size, MB/s and microseconds per page for pages with a realistic tag mix (head
with stylesheets, preconnects, analytics and ad scripts; article cards with images, srcset,
links, inline JSON, an ad slot, a YouTube iframe and a noscript pixel now and then), and the
peak extra memory (tracemalloc) while streaming a 50 MB page in 64 KB chunks.
"""

from __future__ import annotations

import argparse
import gc
import html
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping

from middleware import rewrite
from middleware.hosts import HostMatcher
from middleware.html import native
from middleware.rewrite import HtmlRewriter, RewritePlan

# The skip the rewriter uses: the C one when middleware._speedups was built (see docs/rewriter.md).
C_SKIP = rewrite._skip_end
# The native pass (scan_end), used instead of the skip in HTML content when it was built.
C_SCAN = native.scan_end

PARTNERS = {
    "google-adsense": ["pagead2.googlesyndication.com", "*.doubleclick.net"],
    "youtube": ["www.youtube.com", "www.youtube-nocookie.com"],
    "meta-pixel": ["connect.facebook.net", "www.facebook.com"],
}

HEAD = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>The Daily Example &mdash; News</title>
<link rel="preconnect" href="https://pagead2.googlesyndication.com">
<link rel="dns-prefetch" href="//www.youtube.com">
<link rel="stylesheet" href="/static/css/site.4f1a2b.css">
<link rel="canonical" href="https://news.example.com/">
<style>
  body { font: 16px/1.5 system-ui; } .card > a { color: #333; } /* <!-- not a comment --> */
</style>
<script async src="https://pagead2.googlesyndication.com/pagead/js/adsbygoogle.js?client=ca-pub-1234"
        crossorigin="anonymous"></script>
<script>
  !function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){};t=b.createElement(e);
  t.async=!0;t.src=v;s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}
  (window, document,'script','https://connect.facebook.net/en_US/fbevents.js');
  var tpl = "<iframe src='https://www.youtube.com/embed/x'></iframe>";
</script>
<script src="/static/js/app.9c8d7e.js" defer></script>
</head>
<body class="home">
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/tech">Tech</a></li></ul></nav></header>
<main>
"""

TAIL = b"""</main>
<footer><p>&copy; 2008 The Daily Example</p></footer>
<noscript><img height="1" width="1" style="display:none"
  src="https://www.facebook.com/tr?id=123&amp;ev=PageView&amp;noscript=1"/></noscript>
</body>
</html>
"""


def card(i: int) -> bytes:
    text = (
        f'<p>Story {i}: the council met on Tuesday &amp; agreed a <em>new</em> plan for '
        f'<a href="/topic/{i % 17}">topic {i % 17}</a>. Officials said the budget of '
        f"&pound;{i * 37}m would cover {i % 9} projects, with <strong>work</strong> starting "
        "in spring; residents were invited to comment before the end of the month.</p>"
    )
    parts = [
        f'<article class="card card--{i % 3}" data-id="{i}">',
        f'<a href="/article/{i}" class="card__link">',
        f'<img src="/img/{i}.jpg" srcset="/img/{i}@2x.jpg 2x, /img/{i}@3x.jpg 3x" '
        f'alt="Photo {i}" loading="lazy" width="300" height="200"></a>',
        f'<h3 class="card__title"><a href="/article/{i}">Headline number {i}</a></h3>',
        text,
        f'<span class="meta" title="{i} comments">{i % 40} comments</span>',
        '<svg class="icon" viewBox="0 0 16 16"><path d="M1 1h14v14H1z"/></svg>',
    ]
    if i % 4 == 0:
        parts.append(
            '<ins class="adsbygoogle" style="display:block" data-ad-client="ca-pub-1234" '
            'data-ad-slot="5678"></ins><script>(adsbygoogle = window.adsbygoogle || []).push({});'
            "</script>"
        )
    if i % 10 == 3:
        parts.append(
            '<iframe width="560" height="315" src="https://www.youtube.com/embed/dQw4w9WgXcQ" '
            'title="YouTube video player" frameborder="0" allowfullscreen></iframe>'
        )
    if i % 10 == 7:
        parts.append(
            '<img src="https://ad.doubleclick.net/ddm/activity/src=1;type=x;cat=y;ord=1" '
            'width="1" height="1" alt="">'
        )
    if i % 6 == 5:
        parts.append(f'<script type="application/ld+json">{{"@type":"NewsArticle","id":{i},'
                     '"headline":"A &lt;b&gt; story"}</script>')
    if i % 8 == 2:
        parts.append("<!-- card separator: <img src=//ad.doubleclick.net/x> -->")
    parts.append("</article>\n")
    return "".join(parts).encode()


def page(size: int) -> bytes:
    body = bytearray(HEAD)
    i = 0
    while len(body) + len(TAIL) < size:
        body += card(i)
        i += 1
    return bytes(body + TAIL)


def placeholder(partner: str, attrs: Mapping[str, str]) -> bytes:
    return (f'<div class="consent-placeholder" data-partner="{html.escape(partner)}">'
            "Load content?</div>").encode()


def make_plan() -> RewritePlan:
    return RewritePlan(
        head_end=b'<link rel="stylesheet" href="/.consent/banner.css">',
        body_start=b"",
        body_end=b'<div id="consent-banner">...</div><script src="/.consent/banner.js"></script>',
        injected_partners=frozenset(),
        allowed_partners=frozenset({"youtube"}),
        granted_purposes=frozenset({"necessary"}),
        matcher=HostMatcher(PARTNERS),
        placeholder=placeholder,
    )


def ours(plan: RewritePlan, doc: bytes, chunk: int) -> bytes:
    rw = HtmlRewriter(plan)
    out = [rw.feed(doc[i : i + chunk]) for i in range(0, len(doc), chunk)]
    out.append(rw.finish())
    return b"".join(out)


def with_skip(skip: Callable[[bytes, int], int] | None,
              scan: bool = False) -> Callable[[RewritePlan, bytes, int], bytes]:
    """``ours`` with the rewriter's skip set to ``skip`` (None: the regex), and the native pass
    on (``scan``) or off."""

    def run(plan: RewritePlan, doc: bytes, chunk: int) -> bytes:
        native.skip_end = skip
        native.scan_end = C_SCAN if scan else None
        try:
            return ours(plan, doc, chunk)
        finally:
            native.skip_end, native.scan_end = C_SKIP, C_SCAN

    return run


def lolhtml_rewrite(plan: RewritePlan, doc: bytes, chunk: int) -> bytes:
    """The same job with python-lolhtml (Cloudflare lol_html), as far as its API allows."""
    import lolhtml

    out: list[bytes] = []
    matcher = plan.matcher
    urls = {"script": ("src",), "img": ("src", "srcset"), "link": ("href",), "iframe": ("src",),
            "embed": ("src",), "source": ("src", "srcset"), "object": ("data",),
            "video": ("src", "poster"), "audio": ("src",)}

    class Handler:
        def element(self, el: lolhtml.Element) -> None:
            name = el.tag_name.lower()
            for attr in urls[name]:
                value = el.get_attribute(attr)
                if not value:
                    continue
                value = html.unescape(value)
                for url in value.split() if attr == "srcset" else (value,):
                    pid = matcher.partner_for_url(url)
                    if pid is None or pid in plan.allowed_partners:
                        continue
                    if name in ("iframe", "embed"):
                        # python-lolhtml has no Element.replace: before() + remove().
                        el.before(plan.placeholder(pid, dict(el.attributes)).decode(),
                                  lolhtml.ContentType.HTML)
                        el.remove()
                        return
                    el.set_attribute("data-consent-" + attr, el.get_attribute(attr) or "")
                    el.remove_attribute(attr)
                    el.set_attribute("data-consent-partner", pid)
                    if name == "script":
                        el.set_attribute("type", "text/plain")
                    break

    class Inject:
        def __init__(self, data: bytes) -> None:
            self.data = data.decode()

        def element(self, el: lolhtml.Element) -> None:
            el.append(self.data, lolhtml.ContentType.HTML)

    rw = lolhtml.HTMLRewriter(lambda b: out.append(bytes(b)))
    rw.on(", ".join(urls), Handler())
    rw.on("head", Inject(plan.head_end))
    rw.on("body", Inject(plan.body_end))
    for i in range(0, len(doc), chunk):
        rw.write(doc[i : i + chunk])
    rw.end()
    return b"".join(out)


def timeit(fn: Callable[[], object], budget_s: float = 1.0) -> float:
    """Best seconds per call over repeated runs within about ``budget_s``."""
    fn()
    best = float("inf")
    deadline = time.perf_counter() + budget_s
    runs = 0
    while runs < 5 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def stream_peak(plan: RewritePlan, total: int, chunk: int = 64 * 1024) -> tuple[int, float]:
    """Peak traced memory while streaming a ``total``-byte page in ``chunk``-byte pieces."""
    unit = page(1024 * 1024)
    body = unit[len(HEAD) : -len(TAIL)]

    def chunks() -> Iterator[bytes]:
        data = HEAD + body * (total // len(body)) + TAIL
        for i in range(0, len(data), chunk):
            yield data[i : i + chunk]

    gc.collect()
    source = list(chunks())
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    rw = HtmlRewriter(plan)
    sent = 0
    for c in source:
        sent += len(rw.feed(c))
    sent += len(rw.finish())
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, sent / elapsed / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true", help="also time python-lolhtml")
    parser.add_argument("--stream-mb", type=int, default=50)
    parser.add_argument("--pure", action="store_true",
                        help="use the regex skip (as CONSENT_GATE_PURE_PYTHON=1 does)")
    parser.add_argument("--skip-both", action="store_true",
                        help="time the C skip and the regex skip side by side")
    parser.add_argument("--native-both", action="store_true",
                        help="time the native pass (scan_end) and the C skip alone side by side")
    args = parser.parse_args()
    if args.pure:
        native.skip_end = native.scan_end = None
    print("skip:", "native pass (scan_end)" if native.scan_end else
          "C (middleware._speedups)" if native.skip_end else "regex (_SKIP_RE)")
    plan = make_plan()
    engines: list[tuple[str, Callable[[RewritePlan, bytes, int], bytes]]] = [("scanner", ours)]
    if args.skip_both:
        if C_SKIP is None:
            parser.error("--skip-both needs the C extension (pip install -e .)")
        engines = [("scan/C", with_skip(C_SKIP)), ("scan/re", with_skip(None))]
    if args.native_both:
        if C_SCAN is None:
            parser.error("--native-both needs the C extension (pip install -e .)")
        engines = [("native", with_skip(C_SKIP, scan=True)), ("C skip", with_skip(C_SKIP))]
    if args.compare:
        engines.append(("lolhtml", lolhtml_rewrite))
    print(f"{'engine':<9} {'page':>8} {'chunk':>7} {'MB/s':>8} {'us/page':>10}")
    for size in (30 * 1024, 1024 * 1024):
        doc = page(size)
        for chunk in (len(doc), 16 * 1024):
            for label, fn in engines:
                secs = timeit(lambda fn=fn, doc=doc, chunk=chunk: fn(plan, doc, chunk))
                print(f"{label:<9} {len(doc) // 1024:>6}KB {chunk // 1024:>5}KB "
                      f"{len(doc) / secs / 1e6:>8.1f} {secs * 1e6:>10.1f}")
    peak, speed = stream_peak(plan, args.stream_mb * 1024 * 1024)
    print(f"streaming {args.stream_mb} MB in 64 KB chunks: peak extra memory "
          f"{peak / 1e6:.2f} MB, {speed:.0f} MB/s (under tracemalloc)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
