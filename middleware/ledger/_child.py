"""Entry point of the ledger writer child process (``python -m middleware.ledger._child``).

A module of its own so that running it does not re-import the module that defines it."""

from middleware.ledger.host import main

if __name__ == "__main__":
    raise SystemExit(main())
