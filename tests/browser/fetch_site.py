"""A site whose markup hard-codes one fetch vector per page (issue 9, items 1 and 2): `site`
serves them as written, `create_app()` serves them through ConsentMiddleware with the CSP off,
so that only the rewriter stands between the page and the partner.

``FETCH_SITE_CONFIG`` names the partners.toml (the partner's host is ``tracker.partner.example``).
"""

from __future__ import annotations

import os
from typing import Any

from middleware import ConsentMiddleware

H = "tracker.partner.example"

#: name -> body markup ({w}: who served it). Each makes Chromium contact the partner as written.
VECTORS: dict[str, str] = {
    "meta-refresh": f'<meta http-equiv="refresh" content="0;url=http://{H}/{{w}}/refresh">',
    "image-tag": f'<image src="http://{H}/{{w}}/image.gif">',
    "input-image": f'<input type="image" src="http://{H}/{{w}}/input.gif" alt="go">',
    "body-background": f'<body background="http://{H}/{{w}}/bg.gif"><p>x</p>',
    "table-background": f'<table background="http://{H}/{{w}}/tbg.gif"><tr><td>x</td></tr></table>',
    "style-attr": f'<div style="width:9px;height:9px;background-image:url(http://{H}/{{w}}/sa.gif)"></div>',
    "style-import": f'<style>@import "http://{H}/{{w}}/i.css";</style>',
    "style-import-foreignobject": (f'<svg><foreignObject><style>@import "http://{H}/{{w}}/fi.css";'
                                   "</style></foreignObject></svg>"),
    "style-url": f"<style>body{{background:url(http://{H}/{{w}}/su.gif)}}</style>",
    "style-typed-css": f'<style type="text/css">body{{background:url(http://{H}/{{w}}/st.gif)}}</style>',
    "svg-image": f'<svg><image href="http://{H}/{{w}}/si.gif" width="9" height="9"/></svg>',
    "svg-image-xlink": f'<svg><image xlink:href="http://{H}/{{w}}/sx.gif" width="9" height="9"/></svg>',
    "svg-script": f'<svg><script href="http://{H}/{{w}}/ss.js"></script></svg>',
    "svg-feimage": (f'<svg><filter id="f"><feImage href="http://{H}/{{w}}/fe.gif"/></filter>'
                    '<rect filter="url(#f)" width="9" height="9"/></svg>'),
    "svg-set-href": (f'<svg width="9" height="9"><image width="9" height="9"><set attributeName="href" '
                     f'to="http://{H}/{{w}}/set.gif"/></image></svg>'),
    "svg-animate-feimage": (f'<svg width="9" height="9"><filter id="g"><feImage><animate attributeName="href" '
                            f'values="http://{H}/{{w}}/an.gif" dur="1s" fill="freeze"/></feImage></filter>'
                            '<rect filter="url(#g)" width="9" height="9"/></svg>'),
    "svg-title": f'<svg><title><img src="http://{H}/{{w}}/title.gif"></title></svg>',
    "svg-style-markup": f'<svg><style><img src="http://{H}/{{w}}/sb.gif"></style></svg>',
    "svg-plaintext": f'<svg><plaintext></plaintext></svg><img src="http://{H}/{{w}}/pt.gif">',
    "math-plaintext": f'<math><plaintext><img src="http://{H}/{{w}}/mp.gif">',
    "noscript-plaintext": f'<noscript><plaintext></noscript><img src="http://{H}/{{w}}/np.gif">',
    "foreignobject-style": (f'<svg><foreignObject><style><!--</style><img src="http://{H}/{{w}}/fo.gif">'
                            "--></foreignObject></svg>"),
    "math-mi-style": f'<math><mi><style><!--</style><img src="http://{H}/{{w}}/mi.gif">--></mi></math>',
    "data-iframe": f'<iframe src="data:text/html,%3Cimg%20src%3D%22http://{H}/{{w}}/di.gif%22%3E"></iframe>',
    "srcdoc-charrefs": ('<iframe srcdoc="&lt;img src=http://tracker&period;partner&period;example'
                        '/{w}/sd.gif&gt;"></iframe>'),
    "video-poster": f'<video poster="http://{H}/{{w}}/vp.gif"></video>',
    "link-prefetch": f'<link rel="prefetch" href="http://{H}/{{w}}/pf">',
    "object-data": f'<object data="http://{H}/{{w}}/obj"></object>',
    "base-href": f'<base href="http://{H}/{{w}}/"><img src="relative.gif">',
}

#: name -> markup whose partner URL is spelled with character references (task: entity-built
#: URLs): the tokenizer decodes them in attribute values and the URL parser then drops tab and
#: newline and strips leading spaces, so each is the partner's URL to Chromium.
CHARREFS: dict[str, str] = {
    "ref-scheme-hex": f'<img src="&#x68;ttp://{H}/{{w}}/r1.gif">',
    "ref-scheme-decimal-no-semicolon": f'<img src="&#104ttp://{H}/{{w}}/r2.gif">',
    "ref-tab-in-scheme": f'<img src="ht&Tab;tp://{H}/{{w}}/r3.gif">',
    "ref-newline-in-scheme": f'<img src="htt&NewLine;p://{H}/{{w}}/r4.gif">',
    "ref-colon": f'<img src="http&colon;//{H}/{{w}}/r5.gif">',
    "ref-slashes": f'<img src="http:&sol;&#x2f;{H}/{{w}}/r6.gif">',
    "ref-backslashes": f'<img src="http:&bsol;&#92;{H}/{{w}}/r7.gif">',
    "ref-scheme-relative": f'<img src="&#47;/{H}/{{w}}/r8.gif">',
    "ref-host-dots": '<img src="http://tracker&period;partner&#46;example/{w}/r9.gif">',
    "ref-tab-in-host": '<img src="http://tracker.part&Tab;ner.example/{w}/r10.gif">',
    "ref-leading-space": f'<img src="&#32;&Tab;&NewLine;http://{H}/{{w}}/r11.gif">',
    "ref-srcset": f'<img srcset="&#x68;ttp://{H}/{{w}}/r13.gif 1x">',
    "ref-svg-image": f'<svg><image href="ht&Tab;tp&colon;//{H}/{{w}}/r14.gif" width="9" height="9"/></svg>',
    "ref-style-url": f'<div style="width:9px;height:9px;background:url(&#x68;ttp&colon;//{H}/{{w}}/r15.gif)"></div>',
    "ref-style-url-quoted": ('<div style="width:9px;height:9px;background:url(&quot;ht&Tab;tp://'
                             f'{H}/{{w}}/r17.gif&quot;)"></div>'),
    "ref-refresh": f'<meta http-equiv="refresh" content="0;url=&#x68;ttp&colon;//{H}/{{w}}/r16">',
}

#: Character references Chromium does not turn into a partner fetch (measured): a tab inside an
#: unquoted CSS url() makes it a bad URL token; references in <style> text are not decoded
#: (a relative URL); a userinfo@ in an image URL. Through the gate they fetch nothing either.
CHARREF_CONTROLS: dict[str, str] = {
    "ref-style-url-unquoted-tab": ('<div style="width:9px;height:9px;background:url(ht&Tab;tp&colon;//'
                                   f'{H}/{{w}}/c1.gif)"></div>'),
    "ref-style-element": f"<style>body{{background:url(&#x68;ttp://{H}/{{w}}/c2.gif)}}</style>",
    # (Chromium blocks a subresource whose URL has credentials; the rewriter reads the host.)
    "ref-userinfo": f'<img src="http://own.example&commat;{H}/{{w}}/c3.gif">',
}

#: name -> markup after an end tag that breaks out of foreign content (`</p>`, `</br>`) and a
#: raw-text element: the current spec reads the partner tag as text, an older tree builder as
#: an element. Whichever Chromium does, through the rewriter it must not fetch.
BREAKOUTS: dict[str, str] = {
    "svg-p-noembed": f'<svg></p><noembed><img src="http://{H}/{{w}}/pn.gif"></noembed></svg>',
    "svg-br-noembed": f'<svg></br><noembed><img src="http://{H}/{{w}}/bn.gif"></noembed></svg>',
    "math-p-style": f'<math></p><style><img src="http://{H}/{{w}}/ps.gif"></style></math>',
    "svg-p-xmp": f'<svg><g></p><xmp><img src="http://{H}/{{w}}/px.gif"></xmp></g></svg>',
    "svg-p-noframes": f'<svg></p><noframes><img src="http://{H}/{{w}}/pf.gif"></noframes></svg>',
    "svg-br-textarea": f'<svg></br><textarea><img src="http://{H}/{{w}}/bt.gif"></textarea></svg>',
}
#: The same markup without the breakout end tag: the raw-text element is a foreign element and
#: the <img> breaks out as a live HTML element, so each of these fetches as written.
BREAKOUTS.update({f"{name}-control": markup.replace("</p>", "").replace("</br>", "")
                  for name, markup in list(BREAKOUTS.items())})


def page(name: str, who: str) -> bytes:
    """The vector page; partner URLs start with /WHO/NAME/ (who sent which markup)."""
    markup = {**VECTORS, **BREAKOUTS, **CHARREFS, **CHARREF_CONTROLS}[name].replace("{w}", f"{who}/{name}")
    return (f"<!DOCTYPE html><html><head><title>{name}</title></head><body>"
            f"<h1>{name}</h1>{markup}</body></html>").encode()


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    who, _, name = scope["path"][1:].partition("/")
    if name in {**VECTORS, **BREAKOUTS, **CHARREFS, **CHARREF_CONTROLS}:
        status, body = 200, page(name, who)
    else:
        status, body = 404, b"<!DOCTYPE html><title>Not found</title><p>Not found</p>"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    await send({"type": "http.response.body", "body": body})


def create_app() -> ConsentMiddleware:
    """uvicorn --factory: the config path comes from the environment of the server process."""
    return ConsentMiddleware(site, config=os.environ["FETCH_SITE_CONFIG"])
