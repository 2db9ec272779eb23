"""GA4 Measurement Protocol: ``POST /mp/collect?measurement_id=G-..&api_secret=..``.

References: https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference ;
user-provided data, https://developers.google.com/analytics/devguides/collection/ga4/uid-data .
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from middleware.forward.kinds import DAY, Outbound, Prepared
from middleware.forward.spec import ForwardSpec


def client_id(ev: Outbound) -> str:
    """From the consented ``_ga`` cookie (``GA1.1.<random>.<time>``), else a one-off id that
    links this event to nothing."""
    ga = ev.cookie("_ga")
    if ga:
        parts = ga.split(".")
        if len(parts) >= 4 and all(x.isascii() and x.isdigit() for x in parts[-2:]):
            return f"{parts[-2]}.{parts[-1]}"
    return f"{secrets.randbelow(2**31)}.{int(ev.event_time)}"


class Ga4:
    max_age_s = 3 * DAY  # timestamp_micros may be at most 72 hours in the past
    max_batch = 1

    def merge(self, bodies: list[dict[str, Any]]) -> dict[str, Any]:
        return bodies[0]

    def body(self, spec: ForwardSpec, ev: Outbound) -> dict[str, Any]:
        v = ev.values
        params: dict[str, Any] = {"engagement_time_msec": 1, "event_id": ev.event_id}
        for src, dst in (("value", "value"), ("currency", "currency"), ("order_id", "transaction_id"),
                         ("page_url", "page_location"), ("referrer_host", "page_referrer")):
            if src in v:
                params[dst] = v[src] if dst != "page_referrer" else f"https://{v[src]}/"
        body: dict[str, Any] = {
            "client_id": client_id(ev),
            "timestamp_micros": int(ev.event_time * 1_000_000),
            "non_personalized_ads": ev.limited_data_use,
            "consent": {"ad_user_data": "DENIED" if ev.limited_data_use else "GRANTED",
                        "ad_personalization": "DENIED" if ev.limited_data_use else "GRANTED"},
            "events": [{"name": ev.event, "params": params}],
        }
        user_data = {}
        if "email_sha256" in v:
            user_data["sha256_email_address"] = [v["email_sha256"]]
        if "phone_sha256" in v:
            user_data["sha256_phone_number"] = [v["phone_sha256"]]
        if user_data:
            body["user_data"] = user_data
        if "ip" in v:
            body["ip_override"] = v["ip"]
        return body

    def prepare(self, spec: ForwardSpec, secret: str, gpc: bool) -> Prepared:
        query = urlencode({"measurement_id": spec.account, "api_secret": secret})
        return Prepared(f"{spec.endpoint}?{query}", {"content-type": "application/json"})

    def accepted(self, status: int, body: bytes) -> tuple[bool, str]:
        return True, f"HTTP {status}"  # the collect endpoint answers 2xx to anything well-formed


KIND = Ga4()
