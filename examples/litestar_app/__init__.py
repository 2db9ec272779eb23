"""A Litestar app with Jinja2 templates that reads the visitor's consent."""
