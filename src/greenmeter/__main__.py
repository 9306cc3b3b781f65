"""``python -m greenmeter``: the command line."""

from greenmeter.cli import main

raise SystemExit(main())
