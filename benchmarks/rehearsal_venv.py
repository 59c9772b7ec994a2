"""A bare venv that holds only what the GPU machine has, for the CPU rehearsal of device_study.sh.

The device has torch, numpy, SciPy, pandas, pytest and a few more (``benchmarks/device_has.txt``)
and nothing else; everything else must come from the carried site folder. This makes such a
venv here: ``python -m venv --without-pip DIR``, then a link in its site-packages to each file
and folder of those distributions as installed in the running interpreter (read from their
``RECORD``). A rehearsal with ``PYTHON=DIR/bin/python`` then fails on any package the site
folder lacks, as the device would. Usage::

    python benchmarks/rehearsal_venv.py DIR
"""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent


def device_has() -> set[str]:
    """The normalised distribution names of ``benchmarks/device_has.txt``."""
    lines = (HERE / "device_has.txt").read_text().splitlines()
    return {_norm(n) for n in (line.strip() for line in lines) if n and not n.startswith("#")}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def make_venv(target: Path) -> list[str]:
    """Create the venv and link the device's distributions into it; returns the names linked."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(target)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)}))
    wanted, linked = device_has(), []
    for dist in md.distributions():
        name = _norm(dist.metadata["Name"] or "")
        if name not in wanted or name in linked:
            continue
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source, link = Path(dist.locate_file(top)), site / top
            if source.exists() and not link.exists() and top != "__pycache__":
                link.symlink_to(source)
        linked.append(name)
    return sorted(linked)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("Usage::")[1])
    names = make_venv(Path(sys.argv[1]))
    missing = sorted(device_has() - set(names))
    print(f"linked {len(names)} distributions into {sys.argv[1]}; not installed here: {missing or 'none'}")
