"""Losses and other pieces that are not part of the seed study: worked examples of extending it.

Nothing here is among the seed's six losses (:data:`hie_core.losses.LOSS_NAMES`); each is
used only when a run names it, e.g. ``-p loss hie_core.contrib.small_lesion:TverskyHDTFocal``.
"""
