"""`python -m sidegate.cli`, the same as `sidegate`."""

from sidegate.cli.commands import main

raise SystemExit(main())
