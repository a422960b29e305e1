"""``python -m searchkit``: see :mod:`searchkit.cli`."""

from .cli import main

raise SystemExit(main())
