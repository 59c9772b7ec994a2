"""Reporting: the book's numbers, tables, figures, prose and viewers, and the book build.

One job per module, one definition of each helper:

- numbers: ``runs`` (a study's run folders, read and checked; case volumes), ``stats``
  (bootstrap CIs, paired tests, Holm, challenge ranks), ``tables`` (Table 1, comparisons,
  strata, per case), ``results`` (writes and reads ``runs/<study>/results/``);
- words: ``sources`` (the one data-source label and banner), ``prose`` (abstract and
  discussion from the numbers), ``deviations`` (every difference from the seed study);
- pictures: ``display`` (tables without index, Plotly as HTML, BookFigure, the "mean [CI]"
  formatter), ``volumes`` (windowing, crops, the agreement colours), ``slices`` and ``slice_frames``
  (Plotly slice viewers and their frames),
  ``live`` (ipywidgets viewer), ``stills`` (matplotlib montage), ``methods_figures`` (the
  Methods page's before/after montages), ``charts`` (curves,
  Table 1 as a figure), ``diagrams`` (pipeline, U-Net);
- pages: ``data_page``, ``methods_page``, ``results_page`` (Intro and Results),
  ``performance_page``, ``experiment`` (the training notebook);
- the book: ``book``, ``sphinx_offline``.
"""
