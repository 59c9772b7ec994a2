"""hie_core: HIE lesion segmentation on BONBID-HIE with a 3D U-Net and six losses.

All logic of the project lives here; notebooks only call it. Arrays follow the
(C, D, H, W) convention with D the slice axis, and ``spacing_mm`` always follows the
array's axis order (see :mod:`hie_core.io`).
"""

from __future__ import annotations

__version__ = "0.1.0"
