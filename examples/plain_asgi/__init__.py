"""A bare ASGI callable (no framework), including a streamed page."""
