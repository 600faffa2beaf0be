"""Allow `python -m procore_setup`."""

from .cli import main

raise SystemExit(main())
