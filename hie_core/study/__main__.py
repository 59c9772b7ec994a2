"""``python -m hie_core.study``: see :mod:`hie_core.study`."""

from __future__ import annotations

import sys

from hie_core.study import main

sys.exit(main())
