"""Fixed choices of the training protocol that are code, not configuration fields.

The training loop (``hie_core.training``) applies them and the Methods page
(:mod:`hie_core.report.pages.deviations`) reports them, so both read them here, in the core:

- :func:`l1_weights`: the parameters the L1 weight penalty covers (the weights of the
  convolutions, not biases or normalisation scales);
- :data:`SELECTION_OVERLAP`: the overlap of the sliding windows that score the selection set
  each epoch (the reported splits blend overlapping windows, the ``sw_overlap`` field).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SELECTION_OVERLAP", "l1_weights"]

#: Overlap of the selection set's sliding windows (a fraction of a window): none, since the
#: selection Dice only ranks epochs, and overlapping windows cost 3-4x the forward passes every
#: epoch (about a third of a quick run).
SELECTION_OVERLAP = 0.0


def l1_weights(model: nn.Module) -> list[nn.Parameter]:
    """Parameters under the L1 penalty: those with ``ndim > 1`` (convolution weights, shape ``(out, in, *kernel)``)."""
    return [p for p in model.parameters() if p.ndim > 1]
