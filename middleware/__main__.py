"""``python -m middleware`` is the consent-gate command."""

from .cli import main

raise SystemExit(main())
