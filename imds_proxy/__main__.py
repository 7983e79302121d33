"""`python -m imds_proxy` runs the command line."""

from imds_proxy.cli import main

raise SystemExit(main())
