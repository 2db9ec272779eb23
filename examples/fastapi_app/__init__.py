"""A FastAPI app that reads the visitor's consent in its views."""
