"""GatedHeaders: the one-pass raw header edits give exactly what the MutableHeaders edits
gave (same bytes, same order), and the remembered Vary / Cache-Control values are per value."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import MutableHeaders

from middleware.headers import GatedHeaders, merge_vary, private_cache_control, set_header
from tests.support.budget import examples

VARY = ["Cookie", "Accept-Language", "Sec-GPC"]
CSP = (b"content-security-policy", b"default-src 'self'")


def reference(raw: list[tuple[bytes, bytes]], *, private: bool, drop_validators: bool,
              frame_options: str | None, csp: tuple[bytes, bytes] | None,
              length: bytes | None, drop_length: bool) -> list[tuple[bytes, bytes]]:
    """The edits as the responder made them before, with starlette's MutableHeaders."""
    start = {"headers": list(raw)}
    if drop_length:
        headers = MutableHeaders(scope=start)
        if "content-length" in headers:
            del headers["content-length"]
    headers = MutableHeaders(scope=start)
    if private:
        headers["vary"] = merge_vary(headers.get("vary"), VARY)
        headers["cache-control"] = private_cache_control(headers.get("cache-control"))
    if drop_validators:
        for name in ("etag", "last-modified"):
            if name in headers:
                del headers[name]
    if frame_options is not None and "x-frame-options" not in headers:
        headers["x-frame-options"] = frame_options
    if csp is not None:
        headers.append(csp[0].decode(), csp[1].decode())
    if length is not None:
        MutableHeaders(scope=start)["content-length"] = length.decode()
    return list(start["headers"])


NAMES = st.sampled_from([b"vary", b"cache-control", b"etag", b"last-modified", b"x-frame-options",
                         b"content-length", b"content-type", b"set-cookie", b"x-other"])
VALUES = st.sampled_from([b"", b"Accept-Encoding", b"cookie, Origin", b"*", b"public, max-age=60",
                          b"no-store", b"private", b"s-maxage=5, max-age=1", b'"abc"', b"12",
                          b"DENY", b"text/html; charset=utf-8"])


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=10), st.booleans(), st.booleans(),
       st.sampled_from([None, "SAMEORIGIN", "DENY"]), st.booleans(),
       st.sampled_from([None, b"0", b"31424"]), st.booleans())
def test_gated_headers_same_as_mutable_headers(raw: list[tuple[bytes, bytes]], private: bool,
                                               drop_validators: bool, frame_options: str | None,
                                               with_csp: bool, length: bytes | None,
                                               drop_length: bool) -> None:
    gated = GatedHeaders(VARY, frame_options)
    csp = CSP if with_csp else None
    want = reference(raw, private=private, drop_validators=drop_validators,
                     frame_options=frame_options, csp=csp, length=length, drop_length=drop_length)
    for _ in range(2):  # the second time from the remembered values
        got, fetching = gated.edit(raw, private=private, drop_validators=drop_validators,
                                   frame_options=frame_options is not None,
                                   append=(csp,) if csp else (), drop_length=drop_length)
        if length is not None:
            set_header(got, b"content-length", length)
        assert got == want
        assert not fetching
        if not drop_length:  # the length set in the same pass
            in_pass, _ = gated.edit(raw, private=private, drop_validators=drop_validators,
                                    frame_options=frame_options is not None,
                                    append=(csp,) if csp else (), length=length)
            assert in_pass == want


def test_gated_headers_remembered_values_are_per_value() -> None:
    gated = GatedHeaders(VARY, None)
    for _ in range(2):
        one, _ = gated.edit([(b"vary", b"Origin"), (b"cache-control", b"public")],
                            private=True, drop_validators=False, frame_options=False)
        two, _ = gated.edit([(b"vary", b"Accept-Encoding"), (b"cache-control", b"no-store")],
                            private=True, drop_validators=False, frame_options=False)
        assert one == [(b"vary", b"Origin,Cookie,Accept-Language,Sec-GPC"),
                       (b"cache-control", b"private")]
        assert two == [(b"vary", b"Accept-Encoding,Cookie,Accept-Language,Sec-GPC"),
                       (b"cache-control", b"no-store")]


def test_gated_headers_report_fetching_headers() -> None:
    _, fetching = GatedHeaders(VARY, None).edit(
        [(b"link", b"<https://x.example/>; rel=preconnect")], private=True,
        drop_validators=True, frame_options=True)
    assert fetching
