"""Bodies the byte-level rewriter cannot read as sent: a Content-Encoding other than gzip or
deflate (br, zstd, a stack of them, a name no browser knows), and XML documents (XHTML,
SVG) in UTF-16 or ISO-2022-JP, by header or by their XML declaration. Each holds a meta
refresh, an ``<img>`` and an SVG ``<image href>`` to the partner, every URL marked with
who served it and which vector it is (``/{who}/{name}/refresh`` ...). ``site`` serves them
as written (whatever the request's Accept-Encoding: a pre-compressed file), ``create_app()``
through ConsentMiddleware. ``/ae/{who}`` answers the Accept-Encoding of that server's last page
request.

``FETCH_SITE_CONFIG`` names the partners.toml (the partner's host is ``tracker.partner.example``).
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from collections.abc import Callable
from typing import Any

import brotli
from backports import zstd

from middleware import ConsentMiddleware
from tests.asgi_helpers import answer_lifespan

H = "tracker.partner.example"

#: One XHTML page: a meta refresh (1 s, so the subresources load first), an img, an SVG image.
XHTML = ('<?xml version="1.0" encoding="{enc}"?>\n'
         '<html xmlns="http://www.w3.org/1999/xhtml"><head>'
         '<meta http-equiv="refresh" content="1;url=http://' + H + '/{w}/refresh"/>'
         '<title>enc</title></head><body><p>x</p><img src="http://' + H + '/{w}/img" alt=""/>'
         '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">'
         '<image href="http://' + H + '/{w}/svgimg" width="9" height="9"/></svg></body></html>')
#: A standalone SVG document: its XHTML meta inside a foreignObject, and an image.
SVG = ('<?xml version="1.0" encoding="{enc}"?>\n'
       '<svg xmlns="http://www.w3.org/2000/svg" xmlns:h="http://www.w3.org/1999/xhtml" '
       'width="90" height="90"><foreignObject width="9" height="9"><h:meta http-equiv="refresh" '
       'content="1;url=http://' + H + '/{w}/refresh"/></foreignObject>'
       '<image href="http://' + H + '/{w}/svgimg" width="9" height="9"/></svg>')
#: The same vectors in an HTML page.
HTML = ('<!DOCTYPE html><html><head><meta http-equiv="refresh" content="1;url=http://' + H
        + '/{w}/refresh"><title>enc</title></head><body><p>x</p><img src="http://' + H
        + '/{w}/img" alt=""><svg width="9" height="9"><image href="http://' + H
        + '/{w}/svgimg" width="9" height="9"/></svg></body></html>')

#: XHTML whose meta comes from an internal entity that spells the name with a character
#: reference (the XML parser expands it; a byte reader sees no http-equiv).
XHTML_ENTITY = XHTML.replace(
    "?>\n", "?>\n<!DOCTYPE html [<!ENTITY r \"<meta &#104;ttp-equiv='refresh' "
    "content='1;url=http://" + H + "/{w}/refresh'/>\">]>\n").replace(
    '<meta http-equiv="refresh" content="1;url=http://' + H + '/{w}/refresh"/>', "&r;")
#: An HTML page whose XML declaration names ISO-2022-JP (Chromium decodes it so): the name is
#: spelled with a mode escape, the img and SVG are behind an ESC $ B "comment".
HTML_XML_DECL = ('<?xml version="1.0" encoding="ISO-2022-JP"?>' + HTML.replace(
    "http-equiv", "http-\x1b(Bequiv").replace("<p>x</p>", "<p>x</p>\x1b$B<!--\x1b(B").replace(
    "</body>", "\x1b$B-->\x1b(B</body>"))
#: An XSLT stylesheet that builds the name (concat) and an XML document that applies it from
#: the same origin (Chromium 156 runs XSLT). The refresh URL names the sheet.
XSL_SHEET = ('<?xml version="1.0"?><xsl:stylesheet version="1.0" '
             'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:template match="/">'
             '<html xmlns="http://www.w3.org/1999/xhtml"><head><meta><xsl:attribute '
             "name=\"{concat('http-','equiv')}\">refresh</xsl:attribute><xsl:attribute "
             'name="content">1;url=http://' + H + '/{w}/refresh</xsl:attribute></meta>'
             "<title>enc</title></head><body><p>x</p></body></html></xsl:template></xsl:stylesheet>")
XSLT_DOC = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<?xml-stylesheet type="text/xsl" href="xsl-sheet"?><doc>x</doc>')
#: An XML document styled by its own CSS and by a partner's (``/{who}/xml-css``); the own
#: sheet is ``/{who}/own.css`` (relative to the document).
XML_CSS = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<?xml-stylesheet type="text/css" href="own.css"?>\n'
           '<?xml-stylesheet type="text/css" href="http://' + H + '/{w}/css"?>\n'
           '<doc><t>x</t></doc>')
OWN_CSS = b"t { display: block; color: rgb(1, 2, 3) }"
#: ``/{who}/NAME`` -> the codec of that XML_CSS document (UTF-16 ones with their BOM).
XML_CSS_CODECS = {"xml-css": "utf-8", "xml-css-utf16le": "utf-16-le", "xml-css-utf16be": "utf-16-be",
                  "xml-css-charref": "utf-8", "xml-css-charref-utf16le": "utf-16-le"}


def _xml_css(name: str, w: str) -> bytes:
    codec = XML_CSS_CODECS[name]
    text = XML_CSS.replace("{w}", w)
    if "charref" in name:  # the partner's href built with a character reference
        text = text.replace('href="http://', 'href="&#104;ttp://')
    if codec == "utf-8":
        return text.encode()
    return "\ufeff".encode(codec) + text.replace("UTF-8", "UTF-16").encode(codec)
_XHTML_TYPE = b"application/xhtml+xml"
_SVG_TYPE = b"image/svg+xml"


def _br(b: bytes) -> bytes:
    return bytes(brotli.compress(b))


def _zstd(b: bytes) -> bytes:
    return bytes(zstd.compress(b))


def _raw_deflate(b: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(b) + c.flush()


def _cut(name: str, text: str) -> bytes:
    """The page cut inside its SVG <image href="...svgimg (the img and the refresh before it),
    in coding ``name``: flushed there, the stream never ended (a truncated response)."""
    data = text[:text.index("/svgimg") + len("/svgimg")].encode()
    if name == "br":
        c = brotli.Compressor()
        return bytes(c.process(data) + c.flush())
    if name == "zstd":
        z = zstd.ZstdCompressor()
        return bytes(z.compress(data) + z.flush(zstd.ZstdCompressor.FLUSH_BLOCK))
    g = zlib.compressobj(6, zlib.DEFLATED, 31 if name == "gzip" else 15)
    return g.compress(data) + g.flush(zlib.Z_SYNC_FLUSH)


def _utf8(text: str) -> bytes:
    return text.encode()


def _iso(text: str) -> bytes:
    # ISO-2022-JP's ASCII-mode escape inside the name: a browser reads http-equiv.
    return text.replace("http-equiv", "http-\x1b(Bequiv").encode()


def _le(text: str) -> bytes:
    return text.encode("utf-16-le")


def _le_bom(text: str) -> bytes:
    return b"\xff\xfe" + text.encode("utf-16-le")


#: name -> (content type, extra headers, template, encode(text) -> bytes, encoding= value)
BODIES: dict[str, tuple[bytes, list[tuple[bytes, bytes]], str, Callable[[str], bytes], str]] = {
    "html-br": (b"text/html; charset=utf-8", [(b"content-encoding", b"br")], HTML,
                lambda t: _br(t.encode()), ""),
    "html-zstd": (b"text/html; charset=utf-8", [(b"content-encoding", b"zstd")], HTML,
                  lambda t: _zstd(t.encode()), ""),
    "html-gzip-br": (b"text/html; charset=utf-8", [(b"content-encoding", b"gzip, br")], HTML,
                     lambda t: _br(gzip.compress(t.encode())), ""),
    "html-two-headers": (b"text/html; charset=utf-8",
                         [(b"content-encoding", b"gzip"), (b"content-encoding", b"br")],
                         HTML, lambda t: _br(gzip.compress(t.encode())), ""),
    "html-utf32-label": (b"text/html; charset=utf-32", [], HTML, _utf8, ""),
    "untyped-br": (b"", [(b"content-encoding", b"br")], HTML, lambda t: _br(t.encode()), ""),
    "xhtml-br-utf16-bom": (_XHTML_TYPE, [(b"content-encoding", b"br")], XHTML,
                           lambda t: _br(_le_bom(t)), "UTF-16"),
    # deflate without its zlib header (RFC 9110 asks for one; Chromium reads raw deflate too).
    "html-deflate-raw": (b"text/html; charset=utf-8", [(b"content-encoding", b"deflate")], HTML,
                         lambda t: _raw_deflate(t.encode()), ""),
    # Truncated streams (Chromium renders what they decode to; the cut tag is dropped).
    **{f"html-{c}-cut": (b"text/html; charset=utf-8", [(b"content-encoding", c.encode())], HTML,
                         functools.partial(_cut, c), "") for c in ("gzip", "deflate", "br", "zstd")},
    # A wrong CRC-32 in the gzip footer: Chromium does not check it (renders the whole page).
    "html-gzip-bad-crc": (b"text/html; charset=utf-8", [(b"content-encoding", b"gzip")], HTML,
                          lambda t: gzip.compress(t.encode())[:-8] + b"\x00" * 8, ""),
    # A 16 MB window (WBITS 24): Chromium renders it; the gate refuses past 8 MB (ended).
    "html-br-lgwin24": (b"text/html; charset=utf-8", [(b"content-encoding", b"br")], HTML,
                        lambda t: bytes(brotli.compress(t.encode(), lgwin=24)), ""),
    "html-unknown": (b"text/html; charset=utf-8", [(b"content-encoding", b"x-consent-test")],
                     HTML, _utf8, ""),
    "html-br-utf16": (b"text/html; charset=utf-16le", [(b"content-encoding", b"br")], HTML,
                      lambda t: _br(_le(t)), ""),
    "xhtml-br": (_XHTML_TYPE, [(b"content-encoding", b"br")], XHTML,
                 lambda t: _br(t.encode()), "UTF-8"),
    "xhtml-utf16-header": (_XHTML_TYPE + b"; charset=utf-16le", [], XHTML, _le, "UTF-16"),
    "xhtml-utf16-bom": (_XHTML_TYPE, [], XHTML, _le_bom, "UTF-16"),
    "xhtml-utf16-decl": (_XHTML_TYPE, [], XHTML, _le, "UTF-16"),
    "xhtml-iso2022-header": (_XHTML_TYPE + b"; charset=iso-2022-jp", [], XHTML, _iso,
                             "ISO-2022-JP"),
    "xhtml-iso2022-decl": (_XHTML_TYPE, [], XHTML, _iso, "ISO-2022-JP"),
    "svg-utf16-bom": (_SVG_TYPE, [], SVG, _le_bom, "UTF-16"),
    "svg-iso2022-decl": (_SVG_TYPE, [], SVG, _iso, "ISO-2022-JP"),
    "xhtml-entity": (_XHTML_TYPE, [], XHTML_ENTITY, _utf8, "UTF-8"),
    "xhtml-entity-utf16": (_XHTML_TYPE, [], XHTML_ENTITY, _le_bom, "UTF-16"),
    "html-xml-decl-iso2022": (b"text/html", [], HTML_XML_DECL, _utf8, ""),
    "html-xml-decl-iso2022-br": (b"text/html", [(b"content-encoding", b"br")], HTML_XML_DECL,
                                 lambda t: _br(t.encode()), ""),
    "xsl-sheet": (b"text/xsl", [], XSL_SHEET, _utf8, ""),
    "xslt-doc": (b"application/xml", [], XSLT_DOC, _utf8, ""),
    # Comma lists: Chromium takes the last type (HTML here; XHTML, which expands the entity).
    "json-then-html": (b"application/json, text/html", [], HTML, _utf8, ""),
    "html-then-xhtml-entity": (b"text/html, " + _XHTML_TYPE, [], XHTML_ENTITY, _utf8, "UTF-8"),
    # A UTF-16 XML declaration, no BOM, no charset: Chromium reads the HTML page as UTF-16.
    "html-utf16le-xml-decl": (b"text/html", [], '<?xml version="1.0"?>' + HTML, _le, ""),
    "html-utf16be-xml-decl": (b"text/html", [], '<?xml version="1.0"?>' + HTML,
                              lambda t: t.encode("utf-16-be"), ""),
    "svg-utf8": (_SVG_TYPE, [], SVG, _utf8, "UTF-8"),
    "xhtml-utf8": (_XHTML_TYPE, [], XHTML, _utf8, "UTF-8"),
}

_SEEN: dict[str, str] = {}


def body_of(name: str, w: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    ctype, extra, template, encode, enc = BODIES[name]
    typed = [(b"content-type", ctype)] if ctype else []
    return [*typed, *extra], encode(template.replace("{w}", w).replace("{enc}", enc))


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    parts = scope["path"][1:].split("/")
    if parts[0] == "ae":
        body = _SEEN.get(parts[1], "").encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'"' + body + b'"'})
        return
    who, name = parts[0], parts[1] if len(parts) > 1 else ""
    if name in XML_CSS_CODECS or name == "own.css":
        css = name == "own.css"
        body = OWN_CSS if css else _xml_css(name, f"{who}/{name}")
        await send({"type": "http.response.start", "status": 200, "headers": [
            # (a sheet without a charset is read in its document's: UTF-16 for some)
            (b"content-type", b"text/css; charset=utf-8" if css else b"application/xml")]})
        await send({"type": "http.response.body", "body": body})
        return
    if name not in BODIES:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    _SEEN[who] = dict(scope["headers"]).get(b"accept-encoding", b"").decode("latin-1")
    headers, body = body_of(name, f"{who}/{name}")
    # Two messages: the streamed path (the one-message path is another code path).
    cut = len(body) // 2
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body[:cut], "more_body": True})
    await send({"type": "http.response.body", "body": body[cut:]})


def create_app() -> ConsentMiddleware:
    """uvicorn --factory: the config path comes from the environment of the server process."""
    return ConsentMiddleware(site, config=os.environ["FETCH_SITE_CONFIG"])
