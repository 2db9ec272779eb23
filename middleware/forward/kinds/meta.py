"""Meta Conversions API: ``POST /{version}/{pixel id}/events?access_token=..``.

Meta dedupes browser and server events on ``event_id`` within 48 hours and rejects a batch
holding an event older than 7 days, so such an event is dropped (and recorded) instead.
Opted out of sale/sharing: ``data_processing_options: ["LDU"]`` with country and state 0
(Meta geolocates the visitor).

References: https://developers.facebook.com/docs/marketing-api/conversions-api/parameters ;
https://developers.facebook.com/docs/marketing-api/data-processing-options
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from middleware.forward.kinds import DAY, Outbound, Prepared, merge_data
from middleware.forward.spec import ForwardSpec

EVENT_NAMES = {
    "purchase": "Purchase", "add_to_cart": "AddToCart", "begin_checkout": "InitiateCheckout",
    "lead": "Lead", "sign_up": "CompleteRegistration", "page_view": "PageView",
    "view_item": "ViewContent", "search": "Search", "subscribe": "Subscribe", "contact": "Contact",
}


class Meta:
    max_age_s = 7 * DAY
    max_batch = 100  # Meta takes up to 1,000 events per request

    def merge(self, bodies: list[dict[str, Any]]) -> dict[str, Any]:
        return merge_data(bodies)

    def body(self, spec: ForwardSpec, ev: Outbound) -> dict[str, Any]:
        v = ev.values
        user: dict[str, Any] = {}
        if "email_sha256" in v:
            user["em"] = [v["email_sha256"]]
        if "phone_sha256" in v:
            user["ph"] = [v["phone_sha256"]]
        if "ip" in v:
            user["client_ip_address"] = v["ip"]
        if "ua_family" in v:
            user["client_user_agent"] = v["ua_family"]
        for cookie, key in (("_fbp", "fbp"), ("_fbc", "fbc")):
            value = ev.cookie(cookie)
            if value:
                user[key] = value
        data: dict[str, Any] = {
            "event_name": EVENT_NAMES.get(ev.event, ev.event),
            "event_time": int(ev.event_time),
            "event_id": ev.event_id,
            "action_source": "website",
            "user_data": user,
        }
        if "page_url" in v:
            data["event_source_url"] = v["page_url"]
        custom = {k: v[k] for k in ("value", "currency") if k in v}
        if "order_id" in v:
            custom["order_id"] = v["order_id"]
        if custom:
            data["custom_data"] = custom
        if ev.limited_data_use:
            data["data_processing_options"] = ["LDU"]
            data["data_processing_options_country"] = 0
            data["data_processing_options_state"] = 0
        else:
            data["data_processing_options"] = []
        return {"data": [data]}

    def prepare(self, spec: ForwardSpec, secret: str, gpc: bool) -> Prepared:
        url = f"{spec.endpoint.rstrip('/')}/{spec.account}/events?{urlencode({'access_token': secret})}"
        return Prepared(url, {"content-type": "application/json"})

    def accepted(self, status: int, body: bytes) -> tuple[bool, str]:
        try:
            received = json.loads(body).get("events_received")
        except (ValueError, AttributeError):
            received = None
        return True, f"HTTP {status}, events_received={received}"


KIND = Meta()
