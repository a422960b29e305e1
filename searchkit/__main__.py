"""``python -m searchkit``: see :mod:`searchkit.cli`."""

from searchkit.cli import main

raise SystemExit(main())
