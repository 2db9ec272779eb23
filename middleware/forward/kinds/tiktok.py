"""TikTok Events API 2.0: ``POST /open_api/v1.3/event/track/`` with an ``Access-Token`` header.

TikTok answers HTTP 200 with ``{"code": 0}`` on success and a non-zero code otherwise.
Opted out of sale/sharing: ``limited_data_use: true``.

References: https://business-api.tiktok.com/portal/docs?id=1771100865818625 (Events API 2.0).
"""

from __future__ import annotations

import json
from typing import Any

from middleware.forward.kinds import DAY, Outbound, Prepared, merge_data
from middleware.forward.spec import ForwardSpec

EVENT_NAMES = {
    "purchase": "CompletePayment", "add_to_cart": "AddToCart", "begin_checkout": "InitiateCheckout",
    "lead": "SubmitForm", "sign_up": "CompleteRegistration", "view_item": "ViewContent",
    "search": "Search", "subscribe": "Subscribe", "contact": "Contact",
}


class TikTok:
    max_age_s = 7 * DAY
    max_batch = 100  # Events API 2.0 takes a data[] batch

    def merge(self, bodies: list[dict[str, Any]]) -> dict[str, Any]:
        return merge_data(bodies)

    def body(self, spec: ForwardSpec, ev: Outbound) -> dict[str, Any]:
        v = ev.values
        user: dict[str, Any] = {}
        for src, dst in (("email_sha256", "email"), ("phone_sha256", "phone"), ("ip", "ip"),
                         ("ua_family", "user_agent")):
            if src in v:
                user[dst] = v[src]
        ttp = ev.cookie("_ttp")
        if ttp:
            user["ttp"] = ttp
        data: dict[str, Any] = {
            "event": EVENT_NAMES.get(ev.event, ev.event),
            "event_time": int(ev.event_time),
            "event_id": ev.event_id,
            "user": user,
            "limited_data_use": ev.limited_data_use,
        }
        page = {}
        if "page_url" in v:
            page["url"] = v["page_url"]
        if "referrer_host" in v:
            page["referrer"] = f"https://{v['referrer_host']}/"
        if page:
            data["page"] = page
        props = {k: v[k] for k in ("value", "currency", "order_id") if k in v}
        if props:
            data["properties"] = props
        return {"event_source": "web", "event_source_id": spec.account, "data": [data]}

    def prepare(self, spec: ForwardSpec, secret: str, gpc: bool) -> Prepared:
        return Prepared(spec.endpoint, {"content-type": "application/json", "access-token": secret})

    def accepted(self, status: int, body: bytes) -> tuple[bool, str]:
        try:
            answer = json.loads(body)
            code, message = answer.get("code"), str(answer.get("message", ""))[:200]
        except (ValueError, AttributeError):
            return False, f"HTTP {status}, unreadable answer"
        return code == 0, f"HTTP {status}, code {code}: {message}"


KIND = TikTok()
