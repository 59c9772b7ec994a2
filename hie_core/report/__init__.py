"""Reporting: the book's numbers, figures, pages and build, in four layers, each importing only those before it.

- :mod:`hie_core.report.analysis`: the numbers. A study's run folders read and checked
  (``runs``), the results model built once per study (``study_model``, ``study_records``), the
  tables and statistics (``tables``, ``stats``, ``variance``, ``power``, ``hypotheses``,
  ``lesion_stats``, ``lesion_tables``), the fixed analysis plan and the seed's claims (``plan``,
  ``seed_study``), ``results`` (writes and reads ``runs/<study>/results/``) and the study's
  time forecast (``forecast``).
- :mod:`hie_core.report.viewers`: pictures any page can use. ``display`` (tables without index,
  Plotly as HTML, ``BookFigure``, the "mean [CI]" formatter), ``csv_links`` (the CSV under every
  table and figure), ``volumes`` (windowing, crops, agreement colours), ``slices`` and
  ``slice_frames`` (Plotly slice viewers), ``live`` (the ipywidgets viewer), ``stills``
  (matplotlib montages), ``charts`` (curves, Table 1 as a figure).
- :mod:`hie_core.report.pages`: what each page of the book says and shows, computed from the
  numbers: ``data_page``, ``methods_page`` (with ``methods_figures``, ``diagrams``),
  ``results_page`` (with ``results_case``, ``forest``, ``lesion_figures``), ``discussion``,
  ``front_page``, ``published``, ``mechanism``, ``performance_page``, the training notebook's
  ``experiment`` and ``experiment_page``, the words (``prose``, ``design_prose``, ``sources``)
  and every difference from the seed study (``deviations``, ``deviation_reasons``, ``preset_dev``).
- :mod:`hie_core.report.book`: the Jupyter Book build. ``build`` (``build_book``), ``contents``
  (the notebooks and the table of contents), ``meta`` (title and configuration), the Sphinx
  extensions (``sphinx_offline``, ``sphinx_tables``, ``bibliography``), the offline assets and
  page weight (``plotly_bundle``, ``mathjax``, ``compress``, ``weight``) and the copy check of
  the built pages (``copy_check``).
"""
