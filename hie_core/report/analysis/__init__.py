"""The numbers of a study: run folders, the results model, tables, statistics and the analysis plan.

The lowest layer of :mod:`hie_core.report`: it imports no viewer, page or book module.
"""
