"""gate.decision.decide: each input's expected decision, as a table (one row per rule and
per guard of a rule, the response one change away from the plain page).

Both the one-message shortcut (HtmlResponder._whole_now) and the general path act on this one
function's answer, so comparing them can no longer catch a broken guard: this table can (each
guard of decide() was mutated by hand and the table failed, see the commit that added it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from middleware.gate import encodings
from middleware.gate.decision import Decision, Route, decide
from middleware.sniff import BodyKind

from .asgi_helpers import html_app, make_gate

HTML, OTHER, SNIFF, DOCUMENT = BodyKind.HTML, BodyKind.OTHER, BodyKind.SNIFF, BodyKind.DOCUMENT
CSS = BodyKind.CSS
SHEET = (b"content-type", b"text/css")
UTF8 = (b"content-type", b"text/html; charset=utf-8")
PAGE = b"<!DOCTYPE html><html><head></head><body><p>x</p></body></html>"
META_2022 = b'<meta charset="iso-2022-jp"><p>x</p>'
LE_BOM = b"\xff\xfe" + "<p>x</p>".encode("utf-16-le")
BE_BOM = b"\xfe\xff" + "<p>x</p>".encode("utf-16-be")
UTF32_BOM = b"\x00\x00\xfe\xff" + "<p>".encode("utf-32-be")
WHOLE_UTF8 = Decision(Route.WHOLE, charset="utf-8", label_known=True)
GZ = (b"content-encoding", b"gzip")


def row(kind: BodyKind = HTML, status: int = 200, method: str = "GET",
        headers: tuple[tuple[bytes, bytes], ...] = (UTF8,), body: bytes = PAGE, more: bool = False,
        sniffed: bool = False) -> dict[str, Any]:
    return {"kind": kind, "status": status, "method": method, "headers": list(headers),
            "body": body, "more": more, "sniffed": sniffed}


TABLE: list[tuple[str, dict[str, Any], Decision]] = [
    # 1. nothing to gate
    ("JSON (OTHER)", row(kind=OTHER, headers=((b"content-type", b"application/json"),)),
     Decision(Route.PASS)),
    ("OTHER even when HEAD", row(kind=OTHER, method="HEAD"), Decision(Route.PASS)),
    ("204", row(status=204), Decision(Route.PASS)),
    ("205", row(status=205), Decision(Route.PASS)),
    ("304", row(status=304), Decision(Route.PASS)),
    ("304 before HEAD", row(status=304, method="HEAD"), Decision(Route.PASS)),
    # 2. HEAD
    ("HEAD of HTML", row(method="HEAD"), Decision(Route.HEAD)),
    ("HEAD of a body to sniff", row(kind=SNIFF, method="HEAD", headers=()), Decision(Route.HEAD)),
    ("HEAD before a missing decoder", row(method="HEAD", headers=(UTF8, (b"content-encoding", b"zstd"))),
     Decision(Route.HEAD)),
    # 3. a coding with no decoder here (see test_decide_table's monkeypatch: zstd missing)
    ("zstd without its library", row(headers=(UTF8, (b"content-encoding", b"zstd"))),
     Decision(Route.NO_DECODER, "zstd (no decoder installed)")),
    ("nine codings stacked", row(headers=(UTF8, (b"content-encoding", b", ".join([b"gzip"] * 9)))),
     Decision(Route.NO_DECODER, "9 codings stacked (at most 8 are decoded)")),
    ("eight codings stacked", row(headers=(UTF8, (b"content-encoding", b", ".join([b"gzip"] * 8)))),
     Decision(Route.STREAM, "", ("gzip",) * 8, "utf-8", True)),
    ("zstd without its library, a document",
     row(kind=DOCUMENT, headers=((b"content-type", b"application/xhtml+xml"),
                                 (b"content-encoding", b"gzip, zstd"))),
     Decision(Route.NO_DECODER, "zstd (no decoder installed)")),
    # 4. documents
    ("XHTML", row(kind=DOCUMENT, headers=((b"content-type", b"application/xhtml+xml"),)),
     Decision(Route.DOCUMENT, "an XML document or multipart body")),
    ("XHTML gzip", row(kind=DOCUMENT, headers=((b"content-type", b"application/xhtml+xml"), GZ)),
     Decision(Route.DOCUMENT, "an XML document or multipart body", ("gzip",))),
    ("sniffed XML", row(kind=DOCUMENT, headers=(), sniffed=True),
     Decision(Route.DOCUMENT, "an XML document without a Content-Type")),
    # 5. style sheets (gate/css.py), whatever their status; HEAD and 304 as above
    ("style sheet", row(kind=CSS, headers=(SHEET,)), Decision(Route.CSS, "a style sheet")),
    ("style sheet, 404", row(kind=CSS, status=404, headers=(SHEET,)),
     Decision(Route.CSS, "a style sheet")),
    ("style sheet, utf-8, gzip", row(kind=CSS, headers=((b"content-type", b"text/css; charset=utf-8"), GZ)),
     Decision(Route.CSS, "a style sheet", ("gzip",), "utf-8")),
    ("style sheet, two types", row(kind=CSS, headers=((b"content-type", b"text/plain; charset=utf-16"),
                                                      (b"content-type", b"text/css"))),
     Decision(Route.CSS, "a style sheet", (), "utf-16")),
    ("style sheet, zstd without its library",
     row(kind=CSS, headers=(SHEET, (b"content-encoding", b"zstd"))),
     Decision(Route.NO_DECODER, "zstd (no decoder installed)")),
    ("HEAD of a style sheet", row(kind=CSS, method="HEAD", headers=(SHEET,)), Decision(Route.HEAD)),
    ("304 of a style sheet", row(kind=CSS, status=304, headers=(SHEET,)), Decision(Route.PASS)),
    # 6./7. no usable type
    ("no type, gzip", row(kind=SNIFF, headers=(GZ,)),
     Decision(Route.UNREADABLE, "a compressed body without a Content-Type", ("gzip",))),
    ("no type, br then gzip", row(kind=SNIFF, headers=((b"content-encoding", b"br"), GZ)),
     Decision(Route.UNREADABLE, "a compressed body without a Content-Type", ("br", "gzip"))),
    ("no type", row(kind=SNIFF, headers=()), Decision(Route.SNIFF)),
    ("no type, identity coding", row(kind=SNIFF, headers=((b"content-encoding", b"identity"),)),
     Decision(Route.SNIFF)),
    # 7. HTML by its charset
    ("plain page", row(), WHOLE_UTF8),
    ("404 page", row(status=404), WHOLE_UTF8),
    ("streamed page", row(more=True), Decision(Route.STREAM, charset="utf-8", label_known=True)),
    ("gzip page", row(headers=(UTF8, GZ)),
     Decision(Route.STREAM, "", ("gzip",), "utf-8", True)),
    ("identity coding", row(headers=(UTF8, (b"content-encoding", b"identity"))), WHOLE_UTF8),
    ("unknown coding name", row(headers=(UTF8, (b"content-encoding", b"x-unknown"))), WHOLE_UTF8),
    ("no charset", row(headers=((b"content-type", b"text/html"),)),
     Decision(Route.WHOLE, charset=None, label_known=False)),
    ("sniffed HTML", row(headers=(), sniffed=True),
     Decision(Route.WHOLE, charset=None, label_known=False)),
    ("UTF-16 label", row(headers=((b"content-type", b"text/html; charset=utf-16"),)),
     Decision(Route.RESPELLED, "a utf-16-le page", (), "utf-16", True, "utf-16-le")),
    ("UTF-16BE label", row(headers=((b"content-type", b"text/html; charset=UTF-16BE"),)),
     Decision(Route.RESPELLED, "a utf-16-be page", (), "utf-16be", True, "utf-16-be")),
    ("UTF-16 label, gzip", row(headers=((b"content-type", b"text/html; charset=utf-16le"), GZ)),
     Decision(Route.RESPELLED, "a utf-16-le page", ("gzip",), "utf-16le", True, "utf-16-le")),
    ("UTF-16BE label, gzip bytes that look like a LE BOM: the label decides",
     row(headers=((b"content-type", b"text/html; charset=utf-16be"), GZ), body=LE_BOM),
     Decision(Route.RESPELLED, "a utf-16-be page", ("gzip",), "utf-16be", True, "utf-16-be")),
    ("LE BOM under a UTF-8 label", row(body=LE_BOM),
     Decision(Route.RESPELLED, "a utf-16-le page", (), "utf-8", True, "utf-16-le")),
    ("BE BOM, no charset", row(headers=((b"content-type", b"text/html"),), body=BE_BOM),
     Decision(Route.RESPELLED, "a utf-16-be page", (), None, False, "utf-16-be")),
    ("BOM bytes of a gzip body are not a BOM", row(headers=(UTF8, GZ), body=LE_BOM),
     Decision(Route.STREAM, "", ("gzip",), "utf-8", True)),
    ("UTF-32 BOM", row(body=UTF32_BOM),
     Decision(Route.UNREADABLE, "charset 'utf-8' or a UTF-16 BOM", (), "utf-8", True)),
    ("UTF-16 XML declaration, no BOM", row(body='<?xml version="1.0"?><p>x</p>'.encode("utf-16-le")),
     Decision(Route.UNREADABLE, "charset 'utf-8' or a UTF-16 BOM", (), "utf-8", True)),
    ("UTF-16 XML declaration under a UTF-16BE label",
     row(headers=((b"content-type", b"text/html; charset=utf-16be"),),
         body='<?xml version="1.0"?>'.encode("utf-16-be")),
     Decision(Route.RESPELLED, "a utf-16-be page", (), "utf-16be", True, "utf-16-be")),
    ("UTF-32 label", row(headers=((b"content-type", b"text/html; charset=utf-32"),)),
     Decision(Route.UNREADABLE, "charset 'utf-32' or a UTF-16 BOM", (), "utf-32", True)),
    ("ISO-2022-JP label", row(headers=((b"content-type", b"text/html; charset=iso-2022-jp"),)),
     Decision(Route.RESPELLED, "an ISO-2022-JP page", (), "iso-2022-jp", True)),
    ("csISO2022JP label, gzip", row(headers=((b"content-type", b"text/html; charset=csISO2022JP"), GZ)),
     Decision(Route.RESPELLED, "an ISO-2022-JP page", ("gzip",), "csiso2022jp", True)),
    ("declares ISO-2022-JP under an unknown label",
     row(headers=((b"content-type", b"text/html; charset=bogus"),), body=META_2022),
     Decision(Route.RESPELLED, "a page that declares ISO-2022-JP", (), "bogus", False)),
    ("declares ISO-2022-JP, no charset", row(headers=((b"content-type", b"text/html"),),
                                             body=META_2022),
     Decision(Route.RESPELLED, "a page that declares ISO-2022-JP", (), None, False)),
    ("declares ISO-2022-JP under a known label", row(body=META_2022), WHOLE_UTF8),
    ("declares ISO-2022-JP, streamed", row(headers=((b"content-type", b"text/html"),),
                                           body=META_2022, more=True),
     Decision(Route.RESPELLED, "a page that declares ISO-2022-JP", (), None, False)),
    ("declares ISO-2022-JP in a gzip body (watched as it is decoded)",
     row(headers=((b"content-type", b"text/html"), GZ), body=META_2022),
     Decision(Route.STREAM, "", ("gzip",), None, False)),
    ("unknown label", row(headers=((b"content-type", b"text/html; charset=bogus"),)),
     Decision(Route.WHOLE, charset="bogus", label_known=False)),
    ("two types: the last charset", row(headers=(UTF8, (b"content-type", b"text/html; charset=utf-16le"))),
     Decision(Route.RESPELLED, "a utf-16-le page", (), "utf-16le", True, "utf-16-le")),
    ("two types: an unreadable one wins, even first",
     row(headers=((b"content-type", b"text/html; charset=utf-16le"), UTF8)),
     Decision(Route.RESPELLED, "a utf-16-le page", (), "utf-16le", True, "utf-16-le")),
    ("two types, both readable: the last charset",
     row(headers=((b"content-type", b"text/html; charset=bogus"), UTF8)), WHOLE_UTF8),
    ("a comma list: the last charset",
     row(headers=((b"content-type", b"text/html; charset=utf-8, text/html; charset=utf-16le"),)),
     Decision(Route.RESPELLED, "a utf-16-le page", (), "utf-16le", True, "utf-16-le")),
    ("other headers are not read", row(headers=((b"set-cookie", b"a=1"), UTF8,
                                                (b"content-length", b"9"))), WHOLE_UTF8),
]


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # A process without the zstd library (encodings remembers each library's absence as None).
    monkeypatch.setitem(encodings._LIBS, "zstd", None)
    return make_gate(html_app([PAGE]), tmp_path)


@pytest.mark.parametrize(("name", "given", "expected"), TABLE, ids=[name for name, _, _ in TABLE])
def test_decide_table(gate: Any, name: str, given: dict[str, Any], expected: Decision) -> None:
    def ask() -> Decision:
        start = {"type": "http.response.start", "status": given["status"],
                 "headers": list(given["headers"])}
        first = {"type": "http.response.body", "body": given["body"], "more_body": given["more"]}
        return decide(given["kind"], given["method"], start, first, gate, sniffed=given["sniffed"])

    assert ask() == expected
    assert ask() == expected  # asked again (the memories now answer): the same


def test_decide_table_has_every_route() -> None:
    assert {d.route for _, _, d in TABLE} == set(Route)
