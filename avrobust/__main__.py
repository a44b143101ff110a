"""``python -m avrobust``: the same as the ``avrobust`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
