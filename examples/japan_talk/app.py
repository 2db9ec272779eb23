# ruff: noqa: E501  (HTML templates: partner tags are kept on one line, as pasted)
"""Japan Talk: a small Starlette travel blog, the demo site for consent-gate.

This module exposes the *bare* site as ``app``. It knows nothing about consent: the article
pages hard-code the blog's ad slots and share buttons the way a real blog does, and
``/embeds`` hard-codes every kind of partner tag. Wrap it with consent-gate either with the
CLI (``consent-gate run examples.japan_talk.app:app --config examples/japan_talk/partners.toml``)
or by importing ``examples.japan_talk.wrapped:app``.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .articles import AD_SLOT, ARTICLES, BY_SLUG, Article

HERE = Path(__file__).resolve().parent
SITE_NAME = "Japan Talk"
AD_CLIENT = "ca-pub-0000000000000000"
GPT_DIV_ID = "div-gpt-ad-1700000000000-0"

NAV = (
    ("/", "Home"),
    ("/articles/kyoto-autumn", "Kyoto"),
    ("/articles/tokyo-trains", "Tokyo"),
    ("/articles/onsen-etiquette", "Onsen"),
    ("/about", "About"),
)


# --------------------------------------------------------------------------- layout


def layout(
    *,
    title: str,
    body: str,
    description: str,
    active: str = "",
    extra_head: str = "",
) -> str:
    """The full HTML5 document around a page body."""
    current = ' aria-current="page"'
    nav = "".join(
        f'<li><a href="{href}"{current if href == active else ""}>{label}</a></li>'
        for href, label in NAV
    )
    year = dt.date.today().year
    full_title = title if title == SITE_NAME else f"{title} | {SITE_NAME}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(full_title)}</title>
<meta name="description" content="{escape(description)}">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/site.css">
{extra_head}</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="site-header">
<div class="wrap header-inner">
<a class="brand" href="/"><span class="brand-mark" aria-hidden="true"></span>
<span class="brand-text">{SITE_NAME}<small>Travel, culture and food from all over Japan</small></span></a>
<nav class="site-nav" aria-label="Main"><ul>{nav}</ul></nav>
</div>
</header>
<main id="main" class="wrap">
{body}
</main>
<footer class="site-footer">
<div class="wrap footer-inner">
<p class="footer-brand"><span class="brand-mark small" aria-hidden="true"></span> {SITE_NAME}</p>
<ul class="footer-links">
<li><a href="/about">About</a></li>
<li><a href="/privacy">Privacy</a></li>
<li><a href="/.consent/partners">Our partners</a></li>
<li><a href="/api/articles.json">Articles (JSON)</a></li>
</ul>
<p class="copyright">&copy; 2008&ndash;{year} {SITE_NAME}. All rights reserved.</p>
</div>
</footer>
</body>
</html>
"""


def html_page(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code)


def nice_date(iso: str) -> str:
    d = dt.date.fromisoformat(iso)
    return f"{d.day} {d.strftime('%B %Y')}"


def banner(article: Article, *, size: str) -> str:
    return (
        f'<div class="banner banner-{size}" style="--hue:{article.hue}" aria-hidden="true">'
        f'<span class="banner-label">{article.label}</span>'
        f'<span class="banner-caption">{article.caption}</span></div>'
    )


def tag_list(article: Article) -> str:
    return "".join(f'<li class="tag">{escape(t)}</li>' for t in article.tags)


# --------------------------------------------------------------------------- site furniture


def adsense_slot(slot: str = "1234567890") -> str:
    """The blog's hard-coded AdSense unit (the loader script comes from partners.toml)."""
    return f"""<aside class="ad" aria-label="Advertisement">
<p class="ad-label">Advertisement</p>
<ins class="adsbygoogle" style="display:block" data-ad-client="{AD_CLIENT}" data-ad-slot="{slot}" data-ad-format="auto" data-full-width-responsive="true"></ins>
<script>(adsbygoogle = window.adsbygoogle || []).push({{}});</script>
</aside>"""


def gpt_slot() -> str:
    """The blog's Google Ad Manager slot; partners.toml defines and displays it."""
    return f"""<aside class="ad ad-mpu" aria-label="Advertisement">
<p class="ad-label">Advertisement</p>
<div id="{GPT_DIV_ID}" class="gpt-slot"></div>
</aside>"""


def share_buttons(url: str, title: str) -> str:
    u, t = escape(url), escape(title)
    return f"""<div class="share" role="group" aria-label="Share this article">
<span class="share-label">Share</span>
<a href="https://twitter.com/share" class="twitter-share-button share-btn share-x" data-url="{u}" data-text="{t}">Post on X</a>
<a data-pin-do="buttonBookmark" href="https://www.pinterest.com/pin/create/button/" class="share-btn share-pin">Save to Pinterest</a>
<div class="fb-like" data-href="{u}" data-layout="button_count" data-action="like" data-size="small" data-share="true"></div>
</div>"""


def article_card(a: Article) -> str:
    return f"""<article class="card">
<a class="card-link" href="/articles/{a.slug}">{banner(a, size="card")}
<div class="card-body">
<h3>{escape(a.title)}</h3>
<p class="meta"><time datetime="{a.date}">{nice_date(a.date)}</time></p>
<p>{escape(a.summary)}</p>
</div></a>
</article>"""


# --------------------------------------------------------------------------- pages


async def home(request: Request) -> Response:
    featured, *rest = ARTICLES
    cards = "\n".join(article_card(a) for a in rest)
    body = f"""<section class="hero" aria-labelledby="featured-title">
<a class="hero-link" href="/articles/{featured.slug}">{banner(featured, size="hero")}
<div class="hero-text">
<p class="kicker">Featured guide</p>
<h1 id="featured-title">{escape(featured.title)}</h1>
<p>{escape(featured.summary)}</p>
<p class="meta"><time datetime="{featured.date}">{nice_date(featured.date)}</time> &middot; Read the guide &rarr;</p>
</div></a>
</section>
<section aria-labelledby="latest">
<h2 id="latest" class="section-title">Latest articles</h2>
<div class="cards">
{cards}
</div>
</section>
<section class="intro">
<h2>Welcome to {SITE_NAME}</h2>
<p>{SITE_NAME} is an independent travel blog about Japan: the famous sights and the quiet back
streets, the food, the trains, the hot springs and the small customs that make travelling here
a pleasure. <a href="/about">Read more about us</a>.</p>
</section>"""
    return html_page(
        layout(
            title=SITE_NAME,
            body=body,
            description="Japan Talk: travel guides, culture and food from all over Japan.",
            active="/",
        )
    )


async def article(request: Request) -> Response:
    slug = request.path_params["slug"]
    a = BY_SLUG.get(slug)
    if a is None:
        raise HTTPException(status_code=404)
    url = str(request.url.replace(query="", fragment=""))
    body_html = a.body.replace(AD_SLOT, adsense_slot(), 1)
    related = "\n".join(article_card(r) for r in ARTICLES if r.slug != a.slug)
    body = f"""<div class="article-layout">
<article class="post">
<nav class="breadcrumb" aria-label="Breadcrumb"><a href="/">Home</a> &rsaquo; <span>{escape(a.tags[0])}</span></nav>
<header class="post-header">
{banner(a, size="hero")}
<h1>{escape(a.title)}</h1>
<p class="meta">By the {SITE_NAME} team &middot; <time datetime="{a.date}">{nice_date(a.date)}</time></p>
<ul class="tags">{tag_list(a)}</ul>
{share_buttons(url, a.title)}
</header>
<div class="post-body">
{body_html}
</div>
<footer class="post-footer">
<p>Enjoyed this article? Share it with a friend who is planning a trip.</p>
{share_buttons(url, a.title)}
</footer>
</article>
<aside class="sidebar" aria-label="Sidebar">
{gpt_slot()}
<section class="about-box">
<h2>About {SITE_NAME}</h2>
<p>An independent travel blog about Japan since 2008. <a href="/about">More about us</a>.</p>
</section>
</aside>
</div>
<section class="related" aria-labelledby="related-title">
<h2 id="related-title" class="section-title">More from {SITE_NAME}</h2>
<div class="cards">
{related}
</div>
</section>"""
    nav_active = next((href for href, _ in NAV if href == f"/articles/{slug}"), "")
    return html_page(layout(title=a.title, body=body, description=a.summary, active=nav_active))


async def about(request: Request) -> Response:
    body = f"""<article class="post page">
<h1>About {SITE_NAME}</h1>
<p class="lead">{SITE_NAME} started in 2008 as a handful of notes for friends planning their first
trip to Japan. It grew into a travel blog read by people all over the world.</p>
<p>We write about the places we have visited ourselves: the temples and gardens of Kyoto, the
neon and the quiet neighbourhoods of Tokyo, hot-spring towns in the mountains, island ferries,
night buses and station lunch boxes. We try to be practical &mdash; how to get there, when to go,
what it costs &mdash; and honest about crowds and tourist traps.</p>
<h2>How the site is funded</h2>
<p>{SITE_NAME} is free to read. It is paid for by advertising, which is served by Google AdSense
and Google Ad Manager. We also offer share buttons and embedded videos from social networks. None
of these load until you say they may: see our <a href="/privacy">privacy policy</a> and the list
of <a href="/.consent/partners">partners we work with</a>.</p>
<h2>Contact</h2>
<p>We love hearing from readers, especially with corrections and tips. Write to
<a href="mailto:hello@example.com">hello@example.com</a>.</p>
</article>"""
    return html_page(
        layout(
            title="About",
            body=body,
            description=f"About {SITE_NAME}, an independent travel blog about Japan.",
            active="/about",
        )
    )


async def privacy(request: Request) -> Response:
    body = f"""<article class="post page policy">
<h1>Privacy Policy</h1>
<p class="lead">{SITE_NAME} takes your privacy seriously. Please read the following to learn
more about our privacy policy.</p>

<h2>What this privacy policy covers</h2>
<p>This policy covers how {SITE_NAME} treats personal information that {SITE_NAME} collects
and receives, including information related to your past use of {SITE_NAME}. Personal
information is information about you that is personally identifiable, like your name, address,
email address or phone number, and that is not otherwise publicly available. This policy does
not apply to the practices of companies that {SITE_NAME} does not own or control, or to people
that {SITE_NAME} does not employ or manage. Our advertising and social media partners have
their own privacy statements, linked from our <a href="/.consent/partners">partners page</a>.</p>

<h2>Information collection and use</h2>
<p>{SITE_NAME} automatically receives and records information on our server logs from your
browser, including your IP address, {SITE_NAME} cookie information and the page you request.
We use this information to run and improve the site, to fulfil your requests and to contact
you when you ask us to.</p>
<p>{SITE_NAME} places third-party advertising and social media features in its pages. These
third parties (including Google) can place and read cookies on your browser and use web
beacons to collect information. <strong>They are only loaded if you allow them.</strong> When
you first visit, we ask which purposes you agree to; until you agree, our pages are served
without any third-party advertising or social media code.</p>

<h2>Your choices</h2>
<p>We group our partners by purpose:</p>
<ul>
<li><strong>Strictly necessary</strong> &mdash; remembering your privacy choices. This is
always on and stays on our own site.</li>
<li><strong>Advertising</strong> &mdash; Google AdSense and Google Ad Manager (DoubleClick)
show ads and measure them. These partners receive your IP address, browser details, the page
you are reading and their cookies.</li>
<li><strong>Social media</strong> &mdash; Facebook, X (Twitter), Pinterest and YouTube provide
share buttons and embedded videos. They receive similar information when their features
load.</li>
</ul>
<p>The <a href="/.consent/partners">partners page</a> lists every partner, what it receives,
which cookies it sets and a link to its own privacy policy. You can change or withdraw your
choices at any time with the &ldquo;Privacy choices&rdquo; link at the bottom of every page;
when you withdraw, we stop loading the partner and expire the cookies it
set on our domain. If your browser sends the Global Privacy Control signal, we treat it as an
opt-out of advertising, which may count as a &ldquo;sale&rdquo; or &ldquo;sharing&rdquo; of
personal information under some laws.</p>
<p>We keep a record of the choices you make, and of which partners were loaded on which of our
pages, so that we can show that we respected them. The record identifies you only by a random
identifier stored in your consent cookie and a shortened IP address.</p>

<h2>Information sharing and disclosure</h2>
<p>{SITE_NAME} does not rent, sell or share personal information we have collected about you
with other people or non-affiliated companies. However, with your permission our pages include
advertising and social media features from third parties, described above.</p>
<p>We use social media features to allow you to share content from {SITE_NAME} with people you
know or with online communities. Such features may set cookies to enhance their services to
you.</p>
<p>We use third parties to serve ads when you visit our website. These companies (including
Google) may use information about your visits to this and other websites in order to provide
advertisements about goods and services of interest to you.</p>

<h2>Cookies</h2>
<p>{SITE_NAME} sets one cookie of its own, <code>consent</code>, which remembers your privacy
choices for up to 180 days.</p>
<p>If you allow advertising, third parties (including Google) place and read cookies on your
browser, including the DoubleClick cookie, and use web beacons to collect information. If you
allow social media features, the social networks may do the same.</p>

<h2>Confidentiality and security</h2>
<p>We limit access to personal information about you to people who we believe reasonably need
to come into contact with that information to provide our services to you or in order to do
their jobs. We have physical, electronic and procedural safeguards to protect personal
information about you.</p>

<h2>Disclosure by law</h2>
<p>{SITE_NAME} may disclose information you provide if required to do so by law, or if we
believe in good faith that disclosure is reasonably necessary to (1) comply with the law or a
legal process; (2) protect or defend {SITE_NAME}'s rights or property; or (3) protect someone's
health or safety, such as when harm or violence against any person is threatened.</p>

<h2>Changes to this privacy policy</h2>
<p>{SITE_NAME} may update this policy. When we make significant changes in the way we treat
personal information, we will ask for your choices again and place a prominent notice on our
site.</p>
<p class="meta">Effective date: January 23, 2008</p>
</article>"""
    return html_page(
        layout(
            title="Privacy Policy",
            body=body,
            description=f"How {SITE_NAME} handles your personal information and cookies.",
            active="/privacy",
        )
    )


EMBEDS_HEAD = """<meta name="robots" content="noindex">
<link rel="preconnect" href="https://pagead2.googlesyndication.com">
<link rel="dns-prefetch" href="//connect.facebook.net">
"""

EMBEDS_BODY = f"""<article class="post page embeds">
<h1>Partner embeds test page</h1>
<p class="lead">This page hard-codes every kind of partner tag the site uses, so that
consent-gate's rewriter and Content-Security-Policy can be checked in one place. Without
consent every tag below should be neutralised or replaced by a click-to-load placeholder.</p>

<section>
<h2>1. Resource hints</h2>
<p>In the head: <code>&lt;link rel="preconnect" href="https://pagead2.googlesyndication.com"&gt;</code>
and <code>&lt;link rel="dns-prefetch" href="//connect.facebook.net"&gt;</code>.</p>
</section>

<section>
<h2>2. Google AdSense</h2>
<p>Loader script and an ad unit with its inline push:</p>
<script async src="https://pagead2.googlesyndication.com/pagead/js/adsbygoogle.js?client={AD_CLIENT}" crossorigin="anonymous"></script>
<ins class="adsbygoogle" style="display:block" data-ad-client="{AD_CLIENT}" data-ad-slot="2345678901" data-ad-format="auto" data-full-width-responsive="true"></ins>
<script>(adsbygoogle = window.adsbygoogle || []).push({{}});</script>
</section>

<section>
<h2>3. Google Ad Manager (GPT) and a DoubleClick pixel</h2>
<script async src="https://securepubads.g.doubleclick.net/tag/js/gpt.js"></script>
<div id="div-gpt-ad-1700000000000-1" class="gpt-slot"></div>
<img src="https://ad.doubleclick.net/ddm/activity/src=1234567;type=japantalk;cat=embeds0;dc_lat=;dc_rdid=;tag_for_child_directed_treatment=;tfua=;npa=;ord=1?" width="1" height="1" alt="">
<noscript><img src="https://ad.doubleclick.net/ddm/activity/src=1234567;type=japantalk;cat=embeds0;dc_lat=;dc_rdid=;tag_for_child_directed_treatment=;tfua=;npa=;ord=1?" width="1" height="1" alt=""></noscript>
</section>

<section>
<h2>4. Facebook</h2>
<div id="fb-root"></div>
<script async defer crossorigin="anonymous" src="https://connect.facebook.net/en_US/sdk.js#xfbml=1&amp;version=v19.0"></script>
<iframe src="https://www.facebook.com/plugins/like.php?href=https%3A%2F%2Fwww.example.com%2F&amp;width=450&amp;layout=standard&amp;action=like&amp;size=small&amp;share=true&amp;height=35" width="450" height="35" title="Facebook like button" style="border:none;overflow:hidden" allow="clipboard-write; encrypted-media; picture-in-picture; web-share"></iframe>
<noscript><img height="1" width="1" style="display:none" alt="" src="https://www.facebook.com/tr?id=000000000000000&amp;ev=PageView&amp;noscript=1"></noscript>
</section>

<section>
<h2>5. X (Twitter)</h2>
<a href="https://twitter.com/share" class="twitter-share-button share-btn share-x">Post on X</a>
<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>
</section>

<section>
<h2>6. Pinterest (protocol-relative URL)</h2>
<a data-pin-do="buttonBookmark" href="https://www.pinterest.com/pin/create/button/" class="share-btn share-pin">Save to Pinterest</a>
<script async defer src="//assets.pinterest.com/js/pinit.js"></script>
</section>

<section>
<h2>7. YouTube</h2>
<div class="video">
<iframe width="560" height="315" src="https://www.youtube.com/embed/M7lc1UVf-VE" title="YouTube video player" style="border:0" allow="accelerometer; autoplay; clipboard-write; encrypted-media; gyroscope; picture-in-picture; web-share" referrerpolicy="strict-origin-when-cross-origin" allowfullscreen></iframe>
</div>
</section>

<section>
<h2>8. Opt-in inline snippet</h2>
<p>Inert (<code>type="text/plain"</code>) until the <code>ads</code> purpose is granted:</p>
<script type="text/plain" data-consent="ads">window.__adsOptIn = true;</script>
<p id="optin-status" data-status="pending">Opt-in snippet: not checked yet.</p>
</section>

<section class="fetch-vectors">
<h2>9. Less obvious ways to fetch</h2>
<p>Each of these makes a browser contact a partner without a <code>src</code> on a script or
an image at the top level: inline SVG (its <code>&lt;title&gt;</code> holds HTML, its
<code>&lt;image&gt;</code> loads), CSS in a <code>style</code> attribute and a
<code>&lt;style&gt;</code> element, <code>background</code>, <code>&lt;input type=image&gt;</code>,
a video poster, a link ping, an <code>&lt;iframe srcdoc&gt;</code> spelled with character
references and a day-long <code>&lt;meta http-equiv=refresh&gt;</code>.</p>
<svg class="vector-svg" width="2" height="2" aria-hidden="true"><title><img src="https://ad.doubleclick.net/ddm/activity/src=1234567;type=japantalk;cat=svgtitle;ord=1?" width="1" height="1" alt=""></title><image href="https://pagead2.googlesyndication.com/pagead/images/embeds-svg.png" width="1" height="1"/></svg>
<div class="vector-bg" style="width:1px;height:1px;background-image:url(https://ad.doubleclick.net/ddm/activity/src=1234567;type=japantalk;cat=styleattr;ord=1?)"></div>
<style>@import url("https://pagead2.googlesyndication.com/pagead/css/embeds.css");
.vector-ad {{ background: url(https://ad.doubleclick.net/ddm/activity/src=1234567;type=japantalk;cat=style;ord=1?); }}</style>
<table class="vector-table" background="https://pagead2.googlesyndication.com/pagead/images/embeds-bg.png"><tr><td class="vector-ad">&nbsp;</td></tr></table>
<input type="image" src="https://ad.doubleclick.net/ddm/activity/src=1234567;type=japantalk;cat=input;ord=1?" alt="" width="1" height="1">
<video class="vector-video" width="1" height="1" poster="https://i.ytimg.com/vi/M7lc1UVf-VE/hqdefault.jpg"></video>
<p><a href="/about" ping="https://www.facebook.com/tr?id=000000000000000&amp;ev=PingClick">About us (with a ping)</a></p>
<iframe class="vector-srcdoc" title="srcdoc" width="1" height="1" srcdoc="&lt;img src=https://ad&period;doubleclick&period;net/ddm/activity/src=1234567;type=japantalk;cat=srcdoc;ord=1?&gt;"></iframe>
<meta http-equiv="refresh" content="86400;url=https://www.pinterest.com/">
</section>

<section>
<h2>10. Script injected at runtime</h2>
<p>First-party <code>/static/late.js</code> appends
<code>https://connect.facebook.net/en_US/fbevents.js</code> to the DOM after the page has
loaded. The server-side rewriter never sees that tag; only the Content-Security-Policy can
stop it.</p>
<p id="late-status" data-status="pending">late.js: not run yet.</p>
</section>
<script src="/static/late.js" defer></script>
</article>"""


async def embeds(request: Request) -> Response:
    return html_page(
        layout(
            title="Partner embeds",
            body=EMBEDS_BODY,
            description="Test page with every partner tag hard-coded.",
            extra_head=EMBEDS_HEAD,
        )
    )


async def articles_json(request: Request) -> Response:
    return JSONResponse(
        {
            "site": SITE_NAME,
            "articles": [
                {
                    "slug": a.slug,
                    "title": a.title,
                    "date": a.date,
                    "summary": a.summary,
                    "tags": list(a.tags),
                    "url": f"/articles/{a.slug}",
                    "has_video": a.has_video,
                }
                for a in ARTICLES
            ],
        }
    )


async def health(request: Request) -> Response:
    return PlainTextResponse("ok\n")


#: The ad tags a base template hard-codes, as many themes do: the 404 page carries them too,
#: so the gate must rewrite error pages like any other (issue 9.5).
TEMPLATE_AD_TAGS = (
    f'<script async src="https://pagead2.googlesyndication.com/pagead/js/adsbygoogle.js'
    f'?client={AD_CLIENT}" crossorigin="anonymous"></script>\n'
    '<script async src="https://securepubads.g.doubleclick.net/tag/js/gpt.js"></script>\n'
)


async def not_found(request: Request, exc: Exception) -> Response:
    body = f"""<article class="post page">
<h1>Page not found</h1>
<p class="lead">Sorry, we could not find that page. It may have moved, or it never existed.</p>
<p><a href="/">Back to the home page</a></p>
</article>
{adsense_slot("5550000404")}
{gpt_slot()}
<img class="ad-pixel" alt="" width="1" height="1" src="https://pagead2.googlesyndication.com/pagead/gen_204?id=404">"""
    return html_page(
        layout(title="Page not found", body=body, description="Page not found.",
               extra_head=TEMPLATE_AD_TAGS),
        status_code=404,
    )


routes = [
    Route("/", home, name="home"),
    Route("/articles/{slug}", article, name="article"),
    Route("/about", about, name="about"),
    Route("/privacy", privacy, name="privacy"),
    Route("/embeds", embeds, name="embeds"),
    Route("/api/articles.json", articles_json, name="articles_json"),
    Route("/health", health, name="health"),
    Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
]

app = Starlette(routes=routes, exception_handlers={404: not_found})
