"""``python -m convoyd.ctl``: the same as the ``convoyctl`` script."""

from __future__ import annotations

import sys

from convoyd.ctl.cli import main

sys.exit(main())
