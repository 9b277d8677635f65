from sidegate.cli import main

raise SystemExit(main())
