"""``python -m hie_core.synthetic OUT_DIR ...``: write a synthetic release (see :func:`main`)."""

from __future__ import annotations

from hie_core.synthetic.writer import main

if __name__ == "__main__":
    raise SystemExit(main())
