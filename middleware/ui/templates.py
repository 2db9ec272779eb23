"""HTML of the consent UI, built once per language at start-up.

Every value that comes from the config or a request goes through :func:`html.escape`;
the functions here return ``str`` and never see request data except through their
arguments (the preferences page's consent id and return path, a placeholder's size).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from ..config import Config, Partner, Purpose

Texts = Mapping[str, str]

#: Sizes copied from a blocked iframe: digits with an optional px or %, nothing else.
_SIZE = re.compile(r"\s*(\d{1,5}(?:\.\d{1,3})?)\s*(px|%)?\s*", re.ASCII)


def e(value: object) -> str:
    return escape(str(value), quote=True)


@dataclass(frozen=True)
class Urls:
    prefix: str
    css: str
    js: str

    @property
    def choice(self) -> str:
        return self.prefix + "choice"

    @property
    def preferences(self) -> str:
        return self.prefix + "preferences"

    @property
    def partners(self) -> str:
        return self.prefix + "partners"


def data_label(texts: Texts, category: str) -> str:
    return texts.get(f"data_{category}", category.replace("_", " "))


def receives_text(texts: Texts, partner: Partner) -> str:
    sep = texts["list_separator"]
    return sep.join(data_label(texts, c) for c in partner.receives) or texts["none"]


def css_size(value: str | None) -> str | None:
    """``"300"`` -> ``"300px"``, ``"100%"`` -> ``"100%"``; anything else -> None."""
    if value is None:
        return None
    m = _SIZE.fullmatch(value)
    if m is None:
        return None
    return m.group(1) + (m.group(2) or "px")


# --------------------------------------------------------------------------- banner


def banner(config: Config, texts: Texts, lang: str, urls: Urls, *, stale: bool, gpc: bool,
           opt_out: bool | None = None) -> str:
    """``opt_out``: the visitor's jurisdiction is opt-out (None: the policy's default decides)."""
    if opt_out is None:
        opt_out = config.policy.default == "allow"
    notices = []
    if stale:
        notices.append(f'<p class="cg-notice">{e(texts["policy_changed"])} '
                       f'<a href="{e(urls.partners)}">{e(texts["partners_link"])}</a></p>')
    if gpc:
        notices.append(f'<p class="cg-notice">{e(texts["gpc_honoured"])}</p>')
    # Titles only: the descriptions are on the preferences and partners pages (second layer),
    # so the banner stays short enough for a phone screen.
    titles = texts["list_separator"].join(
        p.title for p in config.purposes.values() if not p.necessary)
    purposes = f'<p class="cg-purposes"><strong>{e(texts["purposes"])}:</strong> {e(titles)}</p>'

    def button(action: str, label: str, data_action: str | None = None) -> str:
        return (f'<button class="cg-btn" type="submit" name="action" value="{e(action)}" '
                f'data-consent-action="{e(data_action or action)}">{e(label)}</button>')

    choose = (f'<a class="cg-btn" href="{e(urls.preferences)}" '
              f'data-consent-action="customize">{e(texts["customize"])}</a>')
    if opt_out:
        body = texts["banner_body_optout"]
        buttons = [button("reject-all", texts["reject_all"]), choose,
                   button("accept-all", texts["ok"])]
    else:
        body = texts["banner_body"]
        buttons = [button("accept-all", texts["accept_all"]),
                   button("reject-all", texts["reject_all"]), choose]
    return (
        f'<link rel="stylesheet" href="{e(urls.css)}">'
        f'<div id="consent-gate-banner" class="consent-gate" role="region" tabindex="-1" '
        f'aria-labelledby="consent-gate-title" lang="{e(lang)}">'
        f'<div class="cg-inner">'
        f'<h2 id="consent-gate-title" class="cg-title">{e(texts["banner_title"])}</h2>'
        + "".join(notices)
        + f'<p>{e(body)}</p>'
        + (purposes if titles else "")
        + f'<p><a href="{e(urls.partners)}">{e(texts["partners_link"])}</a></p>'
        f'<form class="cg-form" method="post" action="{e(urls.choice)}" data-consent-form>'
        f'<input type="hidden" name="source" value="banner">'
        f'<input type="hidden" name="return_to" value="">'
        f'<div class="cg-buttons">{"".join(buttons)}</div>'
        f"</form></div></div>"
        f'<script src="{e(urls.js)}" defer></script>'
    )


def skip_link(texts: Texts, lang: str) -> str:
    """The first tab stop of a page showing the banner: keyboard users reach their choice at once,
    without the banner taking focus by itself."""
    return (f'<a class="consent-gate-skip" href="#consent-gate-banner" lang="{e(lang)}">'
            f'{e(texts["skip_to_banner"])}</a>')


def footer_link(texts: Texts, lang: str, urls: Urls, *, do_not_sell: bool = False,
                gpc: bool = False) -> str:
    """The footer link; in opt-out jurisdictions the "Do Not Sell or Share" link the law names
    (a plain link to the preferences page, whose form works without JavaScript), with the
    "Opt-out preference signal honored" notice when the browser sent GPC."""
    label = texts["do_not_sell"] if do_not_sell else texts["privacy_choices"]
    notice = ""
    if do_not_sell and gpc:
        notice = (f' <span class="cg-gpc" id="consent-gate-gpc-notice">'
                  f'{e(texts["opt_out_signal_honoured"])}</span>')
    return (f'<link rel="stylesheet" href="{e(urls.css)}">'
            f'<p class="consent-gate-footer" lang="{e(lang)}">'
            f'<a href="{e(urls.preferences)}" id="consent-gate-preferences-link">'
            f'{e(label)}</a>{notice}</p>')


def placeholder_parts(config: Config, partner: Partner, texts: Texts, lang: str,
                      urls: Urls) -> tuple[str, str]:
    """The placeholder around its size attributes: ``head + ' style=... data-...' + tail``."""
    text = texts["placeholder_text"].replace("{partner}", partner.name).replace(
        "{receives}", receives_text(texts, partner))
    grants = "".join(f'<input type="hidden" name="{e(p)}" value="on">' for p in partner.purposes
                     if not config.purposes[p].necessary)
    head = (f'<link rel="stylesheet" href="{e(urls.css)}">'
            f'<div class="consent-gate-placeholder" data-consent-partner="{e(partner.id)}" '
            f'lang="{e(lang)}"')
    # The button comes first: a site's fixed-ratio wrapper may clip the bottom of a small box.
    tail = (f'><form method="post" action="{e(urls.choice)}" data-consent-form>'
            f'<input type="hidden" name="source" value="placeholder">'
            f'<input type="hidden" name="return_to" value="">{grants}'
            f'<button class="cg-btn" type="submit" name="action" value="save" '
            f'data-consent-action="load">{e(texts["load_content"])}</button></form>'
            f'<p>{e(text)}</p>'
            f'<p><a href="{e(urls.partners)}">{e(texts["partners_link"])}</a></p></div>')
    return head, tail


def placeholder_size(attrs: Mapping[str, str]) -> str:
    width = css_size(attrs.get("width"))
    height = css_size(attrs.get("height"))
    if width is None and height is None:
        return ""
    # min-height: a small embed (a like button) still shows the whole explanation and button.
    style = "".join(f"{k}:{v};" for k, v in (("width", width), ("min-height", height)) if v)
    return f' style="{e(style)}" data-width="{e(width or "")}" data-height="{e(height or "")}"'


# --------------------------------------------------------------------------- pages


def site_frame(config: Config, texts: Texts, back: str) -> tuple[str, str]:
    """The site's own header and footer around a consent page: the owner's fragments, and
    always who runs the site, a way back (``back``, already escaped) and the privacy policy."""
    site = config.site
    name = site.name or texts["back"]
    header = (f'<a class="cg-skip" href="#cg-main">{e(texts["skip_to_content"])}</a>'
              f'<header class="cg-site-header">'
              + (site.header_html or f'<p class="cg-site-name"><a href="{e(site.home)}">'
                                     f'{e(name)}</a></p>')
              + f'<p class="cg-back"><a href="{back}">\u2190 {e(texts["back"])}</a></p></header>')
    facts = []
    if site.name:
        facts.append(e(texts["site_run_by"].replace("{name}", site.name)))
    if site.privacy_policy_url:
        facts.append(f'<a href="{e(site.privacy_policy_url)}">{e(texts["site_privacy_policy"])}</a>')
    if site.contact:
        facts.append(e(texts["site_contact"]).replace("{contact}", contact_html(site.contact)))
    joined = " \u00b7 ".join(facts)
    footer = f'<footer class="cg-site-footer"><p>{joined}</p>{site.footer_html}</footer>'
    return header, footer


def contact_html(contact: str) -> str:
    href = contact if contact.startswith("https://") else f"mailto:{contact}"
    return f'<a href="{e(href)}">{e(contact)}</a>'


def page(lang: str, title: str, urls: Urls, main: str, *, config: Config | None = None,
         texts: Texts | None = None, back: str | None = None) -> str:
    """A whole consent page. With ``config`` and ``texts`` it sits in the site's frame
    (``[site]``: stylesheet, header, footer, who runs it, a way back, the privacy policy)."""
    owner_css = header = footer = ""
    if config is not None and texts is not None:
        if config.site.stylesheet:
            owner_css = f'<link rel="stylesheet" href="{e(config.site.stylesheet)}">'
        header, footer = site_frame(config, texts, back if back is not None
                                    else e(config.site.home))
    return (
        f'<!doctype html><html lang="{e(lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="referrer" content="same-origin">'
        f"<title>{e(title)}</title>"
        f'<link rel="stylesheet" href="{e(urls.css)}">{owner_css}</head>'
        f'<body class="consent-gate-page">{header}<main id="cg-main">{main}</main>{footer}'
        f"</body></html>"
    )


def partners_page(config: Config, texts: Texts, lang: str, urls: Urls) -> str:
    policy = config.policy
    parts = [
        f'<h1>{e(texts["partners_title"])}</h1>',
        f'<p>{e(texts["partners_intro"])}</p>',
        f'<p class="cg-meta">{e(texts["policy_version"])}: <strong>{e(policy.version)}</strong>'
        f' \u00b7 {e(texts["effective_date"])}: '
        f'<time datetime="{e(policy.effective.isoformat())}">'
        f"{e(policy.effective.isoformat())}</time></p>",
        f'<p><a href="{e(urls.preferences)}">{e(texts["privacy_choices"])}</a>'
        + (f' \u00b7 <a href="{e(urls.prefix)}my-data">{e(texts["my_data_link"])}</a>'
           if config.site.my_data_page else "") + "</p>",
    ]
    for partner in config.partners.values():
        sep = texts["list_separator"]
        purposes = sep.join(config.purposes[p].title for p in partner.purposes)
        cookies = sep.join(partner.cookies) or texts["none"]
        if partner.cookie_domains:
            cookies += " (" + sep.join(partner.cookie_domains) + ")"
        parts.append(
            f'<section id="partner-{e(partner.id)}"><h2>{e(partner.name)}</h2><dl>'
            f'<dt>{e(texts["purposes"])}</dt><dd>{e(purposes)}</dd>'
            f'<dt>{e(texts["receives"])}</dt><dd>{e(receives_text(texts, partner))}</dd>'
            f'<dt>{e(texts["cookies"])}</dt><dd>{e(cookies)}</dd>'
            f'<dt>{e(texts["privacy_policy"])}</dt><dd><a href="{e(partner.privacy_url)}" '
            f'rel="noopener noreferrer">{e(partner.privacy_url)}</a></dd></dl></section>')
    if not config.partners:
        parts.append(f'<p>{e(texts["no_partners"])}</p>')
    return page(lang, texts["partners_title"], urls, "".join(parts), config=config, texts=texts)


@dataclass(frozen=True)
class PreferencesTemplate:
    """The preferences page cut around what depends on the request."""

    head: str                 # up to the consent id paragraph
    form_open: str            # <form ...> up to the return_to value
    #: (id, html before the checkbox state, html after it, necessary)
    purposes: tuple[tuple[str, str, str, bool], ...]
    tail: str
    texts: Texts
    gpc_note: str
    #: Where "back" goes when the page the visitor came from is unknown ([site] home).
    home: str = "/"

    def render(self, *, consent_id: str | None, granted: frozenset[str], gpc: bool,
               return_to: str) -> str:
        t = self.texts
        if consent_id:
            who = f'<p class="cg-meta">{e(t["consent_id"])}: <code>{e(consent_id)}</code></p>'
        else:
            who = f'<p class="cg-meta">{e(t["not_decided"])}</p>'
        back = e(return_to or self.home)
        out = [self.head.replace("\x00BACK\x00", back), self.gpc_note if gpc else "", who,
               self.form_open, e(return_to), '">']
        for pid, before, after, necessary in self.purposes:
            state = " checked disabled" if necessary else (" checked" if pid in granted else "")
            out += [before, state, after]
        out.append(self.tail.replace("\x00BACK\x00", back))
        return "".join(out)


def _purpose_block(config: Config, purpose: Purpose, texts: Texts) -> tuple[str, str, str, bool]:
    partners = config.partners_for_purpose(purpose.id)
    names = e(texts["list_separator"]).join(
        f'<a href="{e(p.privacy_url)}" rel="noopener noreferrer">{e(p.name)}</a>' for p in partners)
    badge = f' <span class="cg-badge">{e(texts["always_on"])}</span>' if purpose.necessary else ""
    before = (f'<div class="cg-purpose"><label><input type="checkbox" '
              f'name="{e(purpose.id)}" value="on"')
    after = (f'> {e(purpose.title)}{badge}</label><p>{e(purpose.description)}</p>'
             f'<p class="cg-meta">{e(texts["partners"])}: {names or e(texts["no_partners"])}</p>'
             f"</div>")
    return purpose.id, before, after, purpose.necessary


def preferences_template(config: Config, texts: Texts, lang: str,
                         urls: Urls) -> PreferencesTemplate:
    shell = page(lang, texts["preferences_title"], urls, "\x00MAIN\x00", config=config,
                 texts=texts, back="\x00BACK\x00")
    doc_head, doc_tail = shell.split("\x00MAIN\x00")
    head = (doc_head + f'<h1>{e(texts["preferences_title"])}</h1>'
            f'<p>{e(texts["preferences_intro"])}</p>')
    form_open = (f'<form method="post" action="{e(urls.choice)}">'
                 f'<input type="hidden" name="source" value="preferences">'
                 f'<input type="hidden" name="return_to" value="')
    tail = (f'<p class="cg-note">{e(texts["third_party_cookies_note"])}</p>'
            f'<div class="cg-buttons">'
            f'<button class="cg-btn" type="submit" name="action" value="save">'
            f'{e(texts["save"])}</button>'
            f'<button class="cg-btn" type="submit" name="action" value="withdraw">'
            f'{e(texts["withdraw"])}</button></div></form>'
            f'<p><a href="{e(urls.partners)}">{e(texts["partners_link"])}</a> \u00b7 '
            + (f'<a href="{e(urls.prefix)}my-data" id="consent-gate-my-data-link">'
               f'{e(texts["my_data_link"])}</a> \u00b7 ' if config.site.my_data_page else "")
            + f'<a href="\x00BACK\x00">{e(texts["back"])}</a></p>' + doc_tail)
    blocks = tuple(_purpose_block(config, p, texts) for p in config.purposes.values())
    gpc_note = f'<p class="cg-notice">{e(texts["gpc_honoured"])}</p>'
    return PreferencesTemplate(home=config.site.home, head=head, form_open=form_open,
                               purposes=blocks, tail=tail,
                               texts=texts, gpc_note=gpc_note)
