"""The six-loss study in one command.

``python -m hie_core.study`` (or ``hie-study``) runs ``notebooks/train.ipynb`` with
papermill once per loss into ``runs/<study>/<loss>/`` (the executed notebook beside the
run's files), evaluates the organisers' ``ZADC < -2`` baseline into
``runs/<study>/baseline/``, executes the book's study notebooks (intro, data, methods,
results, performance) on the run folders into ``runs/<study>/book/`` and,
when Jupyter Book is installed, builds the book. With several GPUs visible, losses run in
parallel, one process per GPU. A failed run is reported with the path of its executed
notebook, the others still run, and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hie_core.losses import LOSS_NAMES

__all__ = ["RunOutcome", "run_study", "main"]


@dataclass
class RunOutcome:
    name: str
    ok: bool
    seconds: float
    notebook: Path
    log: Path
    message: str = ""


def _papermill(notebook: Path, out: Path, params: dict, cwd: Path, env: dict, log: Path) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "papermill", str(notebook), str(out), "--cwd", str(cwd), "--no-progress-bar"]
    for key, value in params.items():
        cmd += ["-p", key, str(value)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if proc.returncode == 0:
        return True, ""
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return False, " | ".join(tail)


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover
        return 0


def _run_one(loss: str, study_dir: Path, root: Path, common: dict, gpu: int | None) -> RunOutcome:
    run_dir = study_dir / loss
    notebook = run_dir / "train.ipynb"
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    start = time.perf_counter()
    params = {"loss": loss, "output_dir": str(run_dir), **common}
    ok, message = _papermill(
        root / "notebooks" / "train.ipynb", notebook, params, root, env, run_dir / "papermill.log"
    )
    outcome = RunOutcome(loss, ok, time.perf_counter() - start, notebook, run_dir / "papermill.log", message)
    status = "ok" if ok else f"FAILED - see {notebook} ({message})"
    print(f"[study] {loss:<15} {outcome.seconds:7.1f} s  {status}", flush=True)
    return outcome


def run_study(
    losses: list[str],
    study_dir: Path,
    data_dir: str = "",
    preset: str = "auto",
    device: str = "auto",
    seed: int = 0,
    build_book: bool = True,
) -> list[RunOutcome]:
    """Run the study; returns one outcome per loss, then baseline, results and book steps."""
    from hie_core.training.config import make_config
    from hie_core.training.experiment import project_root, resolve_data_dir

    root = project_root(Path(__file__).resolve().parent)
    study_dir = study_dir.resolve()
    probe = make_config(preset=preset, device=device, data_dir=data_dir)
    data = resolve_data_dir(probe)  # generate the synthetic set once, before parallel runs
    print(f"[study] {len(losses)} loss(es), preset {probe.preset}, device {probe.device}, data {data}"
          f"{' (synthetic)' if probe.synthetic else ''}", flush=True)  # fmt: skip
    common = {"data_dir": data_dir, "preset": preset, "device": device, "seed": seed}
    gpus = _gpu_count() if probe.device.startswith("cuda") else 0
    if gpus > 1:
        with ThreadPoolExecutor(max_workers=gpus) as pool:
            futures = [
                pool.submit(_run_one, loss, study_dir, root, common, i % gpus)
                for i, loss in enumerate(losses)
            ]
            outcomes = [f.result() for f in futures]
    else:
        outcomes = [_run_one(loss, study_dir, root, common, None) for loss in losses]
    outcomes.append(_baseline(data, study_dir))
    if not any(o.ok for o in outcomes[: len(losses)]):
        print("[study] no training run finished: skipping the book", flush=True)
        return outcomes
    outcomes += _run_book_notebooks(root, study_dir)
    if build_book:
        outcomes.append(_build_book(root, study_dir))
    return outcomes


def _baseline(data: Path, study_dir: Path) -> RunOutcome:
    """The ``ZADC < -2`` baseline; a failure is reported like a failed run."""
    from hie_core.training.experiment import run_baseline

    start = time.perf_counter()
    try:
        run_baseline(data, study_dir / "baseline")
        ok, message = True, ""
    except Exception as exc:  # reported in the summary; the study goes on
        ok, message = False, str(exc).splitlines()[0]
    outcome = RunOutcome("baseline", ok, time.perf_counter() - start, study_dir / "baseline", Path(), message)
    print(
        f"[study] {'baseline':<15} {outcome.seconds:7.1f} s  {'ok' if ok else 'FAILED: ' + message}",
        flush=True,
    )
    return outcome


def _run_book_notebooks(root: Path, study_dir: Path) -> list[RunOutcome]:
    """Execute the study-level notebooks (intro, data, methods, results, performance)."""
    from hie_core.report.book import BOOK_NOTEBOOKS

    outcomes = []
    for name in BOOK_NOTEBOOKS:
        out = study_dir / "book" / f"{name}.ipynb"
        start = time.perf_counter()
        log = study_dir / "book" / f"{name}.log"
        ok, message = _papermill(root / "notebooks" / f"{name}.ipynb", out, {"study_dir": str(study_dir)}, root,
                                 dict(os.environ), log)  # fmt: skip
        outcomes.append(RunOutcome(name, ok, time.perf_counter() - start, out, log, message))
        print(
            f"[study] {name:<15} {outcomes[-1].seconds:7.1f} s  {'ok' if ok else 'FAILED - see ' + str(out)}"
        )
    return outcomes


def _build_book(root: Path, study_dir: Path) -> RunOutcome:
    from hie_core.report.book import build_book

    start = time.perf_counter()
    try:
        html = build_book(root, study_dir)
        ok, message = True, str(html)
    except Exception as exc:  # report and go on to the summary
        ok, message = False, str(exc)
    outcome = RunOutcome(
        "book", ok, time.perf_counter() - start, root / "_build" / "html" / "index.html", Path(), message
    )
    print(
        f"[study] {'book':<15} {outcome.seconds:7.1f} s  {'ok: ' + message if ok else 'FAILED: ' + message}"
    )
    return outcome


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hie-study", description=__doc__.split("\n\n")[0])
    p.add_argument("--losses", default=",".join(LOSS_NAMES), help="comma-separated subset of the six losses")
    p.add_argument("--study", default="", help="study name: runs/<study>/ (default: the preset name)")
    p.add_argument("--runs-dir", default="runs", help="parent folder of the study folders")
    p.add_argument("--data-dir", default="", help="BONBID-HIE folder; empty = the synthetic dataset")
    p.add_argument("--preset", default="auto", choices=["auto", "seed", "quick"])
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-book", action="store_true", help="skip the Jupyter Book build")
    args = p.parse_args(argv)
    losses = [s.strip() for s in args.losses.split(",") if s.strip()]
    unknown = [s for s in losses if s not in LOSS_NAMES]
    if unknown:
        p.error(f"unknown loss(es) {unknown}; valid: {', '.join(LOSS_NAMES)}")
    from hie_core.training.config import make_config

    name = args.study or make_config(preset=args.preset, device=args.device).preset
    start = time.perf_counter()
    outcomes = run_study(losses, Path(args.runs_dir) / name, args.data_dir, args.preset, args.device, args.seed,
                         build_book=not args.no_book)  # fmt: skip
    failed = [o for o in outcomes if not o.ok]
    print(
        f"[study] done in {time.perf_counter() - start:.1f} s: {len(outcomes) - len(failed)} ok, {len(failed)} failed"
    )
    for o in failed:
        print(f"[study]   {o.name}: {o.message}  (notebook: {o.notebook}, log: {o.log})")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
