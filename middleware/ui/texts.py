"""English default texts of the consent UI; `[ui.texts.LANG]` in the TOML overrides them by key.

The keys of :data:`DEFAULT_TEXTS` are the only keys a translation may use (config
validation checks them). ``placeholder_text`` takes ``{partner}`` and ``{receives}``.
"""

from __future__ import annotations

from types import MappingProxyType

DEFAULT_TEXTS = MappingProxyType({
    "banner_title": "Your privacy choices",
    "banner_body": (
        "We and our partners would like to use cookies and similar technologies for the purposes "
        "below. Nothing is loaded from a partner until you agree. You can change your mind at any "
        "time from the \u201cPrivacy choices\u201d link at the bottom of every page."
    ),
    "banner_body_optout": (
        "Our partners use cookies and similar technologies for the purposes below. "
        "You can object at any time."
    ),
    "accept_all": "Accept all",
    "reject_all": "Reject all",
    "customize": "Choose",
    "ok": "OK",
    "save": "Save choices",
    "withdraw": "Withdraw all consent",
    "privacy_choices": "Privacy choices",
    # Opt-out jurisdictions (US states): the link the law names, and the GPC notice it asks for.
    "do_not_sell": "Do Not Sell or Share My Personal Information",
    "opt_out_signal_honoured": "Opt-out preference signal honored",
    "skip_to_banner": "Skip to privacy choices",
    "partners_link": "Who are our partners?",
    "policy_changed": (
        "Our privacy policy has changed. Please review our partners and choose again."
    ),
    "gpc_honoured": (
        "Your browser sent a Global Privacy Control signal: we have not enabled advertising "
        "partners that sell or share your data."
    ),
    "preferences_title": "Privacy preferences",
    "preferences_intro": (
        "Choose what our partners may do. Your choice is stored in a cookie on this site only."
    ),
    "partners_title": "Our partners",
    "partners_intro": (
        "These partners receive data from your browser when you agree to the purposes they serve."
    ),
    "purposes": "Purposes",
    "partners": "Partners",
    "no_partners": "No partners.",
    "always_on": "Always on",
    "receives": "Receives",
    "cookies": "Cookies",
    "none": "None",
    "privacy_policy": "Privacy policy",
    "policy_version": "Policy version",
    "effective_date": "In effect since",
    "consent_id": "Your consent id",
    "not_decided": "You have not made a choice yet.",
    "back": "Back to the site",
    "load_content": "Load content",
    "placeholder_text": "This content is provided by {partner}, which would receive: {receives}.",
    "third_party_cookies_note": (
        "Withdrawing consent deletes the cookies our partners set on this site. Cookies that "
        "partners set on their own domains can only be cleared by your browser."
    ),
    "not_found": "Not found.",
    # The site's own frame around every consent page ([site] in the TOML).
    "site_run_by": "This site is run by {name}.",
    "site_privacy_policy": "Privacy policy",
    "site_contact": "Questions about your data: {contact}",
    "skip_to_content": "Skip to the content",
    # The visitor's own page, /.consent/my-data.
    "my_data_link": "What we recorded about you",
    "my_data_title": "What this site recorded about you",
    "my_data_intro": (
        "This page is only for you: it is found through the consent cookie of this browser, "
        "and nobody else can see it."
    ),
    "my_data_none": (
        "This browser has no stored choice, so nothing in our records is linked to it."
    ),
    "my_data_history": "Your consent choices",
    "my_data_no_history": "No choice recorded.",
    "my_data_received": "Partners that received your data",
    "my_data_nothing_received": "No partner received data from your visits.",
    "my_data_recent": "Your recent page views with partners",
    "my_data_when": "When (UTC)",
    "my_data_page": "Page",
    "my_data_what": "What",
    "my_data_views": "Page views",
    "my_data_first_last": "First and last",
    "my_data_categories": "Data",
    "my_data_given": "Choice made",
    "my_data_changed": "Choice changed",
    "my_data_withdrawn": "Consent withdrawn",
    "my_data_granted": "allowed",
    "my_data_refused": "refused",
    "my_data_banner": "The consent screen you saw",
    "my_data_banner_shown": "This is the consent screen you answered on {date}, exactly as shown.",
    "my_data_ask": "To ask us to correct or delete this data, contact {contact}.",
    "my_data_ask_no_contact": (
        "To ask us to correct or delete this data, use the contact in our privacy policy."),
    "my_data_busy": "Too many requests; please try again in a minute.",
    "list_separator": ", ",
    # Data categories a partner receives (config.DATA_CATEGORIES).
    "data_ip_address": "IP address",
    "data_user_agent": "browser type and version",
    "data_page_url": "address of the page",
    "data_referrer": "previous page (referrer)",
    "data_cookies": "cookies",
    "data_device_info": "device information",
    "data_approximate_location": "approximate location",
    "data_browsing_activity": "browsing activity",
    "data_identifiers": "identifiers",
})
