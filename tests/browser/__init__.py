"""Real-browser tests (see README.md)."""
