"""Training and evaluation: run configuration, the training step and loop, prediction on
native grids, one experiment end to end, and the ``hie-predict`` command."""
