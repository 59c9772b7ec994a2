"""Typed views of a study's two kinds of record: ``results/study.json`` and a run's ``config.json``.

The report reads these files through :mod:`hie_core.report.analysis.study_model`, which builds the
records once per study; the pages use their attributes instead of dictionary keys, so a field
that moves or is renamed in a file changes here and nowhere else.

- :class:`RunConfig`: one run folder's ``config.json`` (the method, seed and fold of its folder,
  the loss, network, preset, data folder, device, whether it ran on synthetic data, whether it
  is a folder of outside predictions, and the run's settings as a dict: the ``TrainConfig``
  fields as the code of its day wrote them);
- :class:`StudyConfig`: ``study.json`` (what :func:`hie_core.report.analysis.results.write_results`
  writes), with the design as :class:`Design`.

Both keep the file's whole content as ``raw`` for what a reader shows verbatim. Files written
before a field existed read with the value every such run had (a run without ``arch`` trained
the seed's network).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hie_core.config import DEFAULTS
from hie_core.methods import is_external, run_config
from hie_core.run_folder import parse_run_folder_name

__all__ = ["Design", "RunConfig", "StudyConfig"]


@dataclass(frozen=True)
class RunConfig:
    """One run folder's ``config.json``, typed where the report reads it.

    Attributes:
        method: The method id (the run folder's parent folder name).
        seed: ``k`` of ``seed<k>``.
        fold: ``f`` of ``seed<k>-fold<f>``; None for a plain run.
        path: The run folder.
        loss: The loss name (or ``package.module:Name``); an outside-predictions folder's label.
        arch: The network (the seed's ``unet3d`` for runs written before the choice existed).
        preset: The preset name; None for outside predictions.
        data_dir: The resolved data folder the run read (``data_dir_resolved``, else the
            configuration's ``data_dir``); ``""`` when neither is recorded.
        device: The device the run trained on, in words (``device_name``); None if not recorded.
        synthetic: Whether the run recorded that it read the synthetic dataset.
        external: Whether the folder holds outside predictions (never trained).
        settings: The run's settings (the ``config`` entry: ``TrainConfig`` fields), a dict.
        raw: The whole file.
    """

    method: str
    seed: int | None
    fold: int | None
    path: Path
    loss: str
    arch: str
    preset: str | None
    data_dir: str
    device: str | None
    synthetic: bool
    external: bool
    settings: Mapping[str, Any] = field(repr=False)
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, config: Mapping[str, Any], method: str, seed: int | None, fold: int | None,
                  path: Path) -> RunConfig:  # fmt: skip
        """The record of a ``config.json`` already read (``{}`` gives an empty record: a reference folder)."""
        settings = run_config(config) if config else {}
        return cls(method=method, seed=seed, fold=fold, path=Path(path),
                   loss=str(settings.get("loss") or settings.get("label") or method),
                   arch=str(settings.get("arch") or DEFAULTS["arch"]), preset=settings.get("preset"),
                   data_dir=str(config.get("data_dir_resolved") or settings.get("data_dir") or ""),
                   device=config.get("device_name"), synthetic=bool(config.get("synthetic")),
                   external=bool(config) and is_external(config), settings=dict(settings),
                   raw=dict(config))  # fmt: skip

    @classmethod
    def of_run(cls, run_dir: str | Path, config: Mapping[str, Any]) -> RunConfig:
        """The record of one run's folder and its ``config.json`` (a run page's run, anywhere on disk).

        Method, seed and fold come from a ``<method>/seed<k>[-fold<f>]`` folder; a folder named
        otherwise (a notebook's own ``output_dir``) takes them from the run's settings.
        """
        run_dir = Path(run_dir)
        settings = run_config(config) if config else {}
        seed_fold = parse_run_folder_name(run_dir.name)
        if seed_fold is None:
            folds = int(settings.get("folds") or 0)
            seed_fold = (int(settings.get("seed", 0)), settings.get("fold") if folds > 1 else None)
            method = str(settings.get("loss") or run_dir.name)
        else:
            method = run_dir.parent.name
        return cls.from_json(config, method, *seed_fold, run_dir)

    @classmethod
    def of_result(cls, result: Any) -> RunConfig:
        """:meth:`of_run` of a loaded run (:class:`hie_core.run_folder.RunResult`: ``run_dir``, ``config``)."""
        return cls.of_run(result.run_dir, result.config)

    def get(self, key: str, default: Any = None) -> Any:
        """One run setting (a ``TrainConfig`` field) by name, ``default`` when the run did not record it."""
        return self.settings.get(key, default)


@dataclass(frozen=True)
class Design:
    """The study's design as ``study.json`` records it.

    Attributes:
        folds: Cross-validation folds (0: none).
        seeds: Seeds per method.
        n_cases: Cases per reported split.
        primary_family: The primary contrasts, as ``"<method> - <reference> (dice)"``.
        margins: The equivalence margin per metric (``dice``, ``masd_mm``, ``nsd``).
        alpha: The tests' level.
        power: The power of the detectable differences.
    """

    folds: int
    seeds: int
    n_cases: Mapping[str, int]
    primary_family: tuple[str, ...]
    margins: Mapping[str, float]
    alpha: float
    power: float

    @classmethod
    def from_json(cls, design: Mapping[str, Any]) -> Design:
        return cls(folds=int(design.get("folds") or 0), seeds=int(design.get("seeds") or 0),
                   n_cases=dict(design.get("n_cases") or {}),
                   primary_family=tuple(design.get("primary_family") or ()),
                   margins=dict(design.get("margins") or {}), alpha=float(design.get("alpha", 0.05)),
                   power=float(design.get("power", 0.8)))  # fmt: skip


@dataclass(frozen=True)
class StudyConfig:
    """A study's ``results/study.json``, typed (see :mod:`hie_core.report.analysis.results` for each entry).

    Attributes:
        study: The study folder's name.
        data_dir: The data folder the runs read.
        synthetic: Whether that is the synthetic dataset.
        preset: The runs' preset.
        seeds: The seeds that have a finished run.
        methods: Every method in table order (trained ones, then outside predictions).
        losses: The trained methods.
        seed_methods: The seed's six losses that ran, on which the hypotheses are tested.
        external: Outside predictions.
        method_labels: Each method's display name.
        grid: Each grid parameter's values.
        references: The reference rows present (``baseline``, ``ceiling``).
        comparison_references: What every method is compared with (``dice``, ``baseline``).
        splits: The reported splits in page order.
        n_cases: Cases per split (and ``train``, ``selection``; None where unknown).
        unfinished: Run folders that did not finish (``<method>/<folder>``, ``(failed)`` marked).
        device: The device in words, or the distinct devices when the runs used several.
        fingerprint: The code fingerprint, or the distinct ones when runs differ.
        fingerprints_differ: Whether the runs were made by different code.
        git_commit: The commit(s) the runs recorded.
        run_config: The first trained run's settings (``TrainConfig`` fields).
        design: The design (:class:`Design`).
        statistics: The statistical methods in words, and the bootstrap's resample count.
        best_loss: Per split, whether the tests name a best loss (``candidate``, ``named``, ``reason``, ``p``).
        claims: Per split, each seed claim's verdict.
        variance_components: Per split, the components of each primary contrast.
        analysis_plan: The plan's version, date and page hash.
        raw: The whole file.
    """

    study: str
    data_dir: str
    synthetic: bool
    preset: str | None
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    losses: tuple[str, ...]
    seed_methods: tuple[str, ...]
    external: tuple[str, ...]
    method_labels: Mapping[str, str]
    grid: Mapping[str, list]
    references: tuple[str, ...]
    comparison_references: tuple[str, ...]
    splits: tuple[str, ...]
    n_cases: Mapping[str, int | None]
    unfinished: tuple[str, ...]
    device: str | list[str] | None
    fingerprint: Any
    fingerprints_differ: bool
    git_commit: str | list[str] | None
    run_config: Mapping[str, Any] = field(repr=False)
    design: Design = field(repr=False)
    statistics: Mapping[str, Any] = field(repr=False)
    best_loss: Mapping[str, Mapping[str, Any]] = field(repr=False)
    claims: Mapping[str, Any] = field(repr=False)
    variance_components: Mapping[str, list] = field(repr=False)
    analysis_plan: Mapping[str, Any] = field(repr=False)
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, info: Mapping[str, Any]) -> StudyConfig:
        """The record of a ``study.json`` already read; entries added after a file was written read as empty."""
        losses = tuple(info.get("losses") or ())
        return cls(study=str(info.get("study", "")), data_dir=str(info.get("data_dir", "")),
                   synthetic=bool(info.get("synthetic")), preset=info.get("preset"),
                   seeds=tuple(info.get("seeds") or ()), methods=tuple(info.get("methods") or losses),
                   losses=losses, seed_methods=tuple(info.get("seed_methods") or ()),
                   external=tuple(info.get("external") or ()), method_labels=dict(info.get("method_labels") or {}),
                   grid=dict(info.get("grid") or {}), references=tuple(info.get("references") or ()),
                   comparison_references=tuple(info.get("comparison_references") or ()),
                   splits=tuple(info.get("splits") or ()), n_cases=dict(info.get("n_cases") or {}),
                   unfinished=tuple(info.get("unfinished") or ()), device=info.get("device"),
                   fingerprint=info.get("fingerprint"), fingerprints_differ=bool(info.get("fingerprints_differ")),
                   git_commit=info.get("git_commit"), run_config=dict(info.get("run_config") or {}),
                   design=Design.from_json(info.get("design") or {}), statistics=dict(info.get("statistics") or {}),
                   best_loss=dict(info.get("best_loss") or {}), claims=dict(info.get("claims") or {}),
                   variance_components=dict(info.get("variance_components") or {}),
                   analysis_plan=dict(info.get("analysis_plan") or {}), raw=dict(info))  # fmt: skip

    @property
    def devices(self) -> str:
        """The device(s) in words, several joined by commas."""
        return ", ".join(self.device) if isinstance(self.device, list) else str(self.device)
