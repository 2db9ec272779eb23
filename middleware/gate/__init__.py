"""The per-request parts of ConsentMiddleware (``middleware/asgi.py`` is the entry).

``state``: the request state the site sees; ``request``: the request headers the site gets;
``send``: the send the site gets (JSON and files straight out, else a responder);
``start``: what a start message announces; ``phases``: the named states of one response;
``response_headers``: the header edits of a gated response; ``responder``: the per-response
state machine; ``lifespan``: the ledger opened and closed around the app's own lifespan
handling.
"""
