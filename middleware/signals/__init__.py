"""Consent signals other than our own cookie: IAB TCF and GPP strings, region rules, other tools' cookies.

Each module turns one outside format into plain values; the Consent resolver combines them.
"""
