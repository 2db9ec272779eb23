"""Importable helpers for consent-gate's tests (recording proxy, servers, browser).

Nothing here opens a connection to anything but loopback.
"""
