"""Only the optional C accelerator; all other metadata is in pyproject.toml.

``optional=True``: if the compiler is missing or the build fails, the install still succeeds
and middleware/rewrite.py falls back to its regex (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("middleware._speedups", ["middleware/_speedups.c"], optional=True),
    ],
)
