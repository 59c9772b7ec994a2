"""The analysis plan: a page of the book, versioned and hashed; its numbers are the code's."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from hie_core.report.analysis import plan, power, tables
from hie_core.report.analysis.hypotheses import EPOCH_MARGIN

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / plan.PLAN_PAGE).read_text()


def test_plan_info_names_the_page_version_and_hash() -> None:
    info = plan.plan_info(ROOT)
    assert (info["version"], info["date"], info["page"]) == (
        plan.PLAN_VERSION,
        plan.PLAN_DATE,
        "book/analysis-plan.md",
    )
    assert info["sha256"] == hashlib.sha256((ROOT / plan.PLAN_PAGE).read_bytes()).hexdigest()
    assert plan.read_plan_header(PAGE) == (plan.PLAN_VERSION, plan.PLAN_DATE)


def test_a_page_of_another_version_is_refused(tmp_path: Path) -> None:
    page = tmp_path / plan.PLAN_PAGE
    page.parent.mkdir(parents=True)
    page.write_text(PAGE.replace(f"**Version {plan.PLAN_VERSION},", "**Version 1,"))
    with pytest.raises(plan.PlanPageError, match="change both together"):
        plan.plan_info(tmp_path)
    assert plan.plan_info(tmp_path / "elsewhere")["sha256"] is None  # no page: nothing to hash


def test_the_page_is_in_the_book() -> None:
    assert "file: book/analysis-plan" in (ROOT / "_toc.yml").read_text()


def test_margins_levels_and_components_are_the_codes() -> None:
    assert f"±{tables.MARGINS['dice']:g} Dice" in PAGE and f"±{tables.MARGINS['nsd']:g} NSD" in PAGE
    assert f"±{tables.MARGINS['masd_mm']:g} mm MASD" in PAGE and f"±{EPOCH_MARGIN:g} epochs" in PAGE
    assert f"Family-wise error rate {power.ALPHA:g}" in PAGE and f"Power {power.POWER:.0%}" in PAGE
    assert f"**Target difference {power.TARGET_DICE:g} Dice**" in PAGE
    noise = power.default_noise()
    assert (f"{noise.sd_case:g}\n(case), {noise.sd_run:g} (run" in PAGE
            and f"{noise.sd_case_run:g} (case × run)" in PAGE)  # fmt: skip


def _design_rows() -> list[tuple[int, int, int, str]]:
    """``(cases, seeds, folds, shown)`` of the page's design table."""
    rows = []
    for line in PAGE.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"\d+( with a lesion)?", cells[1]):
            folds = re.match(r"(\d+) folds × (\d+) seeds", cells[2])
            seeds = int(folds.group(2)) if folds else int(cells[2].split()[0])
            rows.append((int(cells[1].split()[0]), seeds, int(folds.group(1)) if folds else 0, cells[3]))
    return rows


def test_detectable_differences_are_computed_by_power() -> None:
    rows = _design_rows()
    assert len(rows) == 4
    noise = power.default_noise()
    for cases, seeds, folds, shown in rows:
        value = power.mdd(noise, cases, seeds, n_tests=2, folds=folds)
        digits = len(shown.split(".")[1])
        assert shown == f"{value:.{digits}f}", (cases, seeds, folds)
    floor = re.search(r"case floor of the (\d+) test cases is ([0-9.]+)", PAGE)
    assert floor and floor.group(2) == f"{power.case_floor(noise, int(floor.group(1)), 2):.3f}"


def test_no_tracked_file_cites_the_team_notes() -> None:
    """Facts live in the repository; nothing cites a file a user never has."""
    pattern = re.compile(
        "|".join(["DESIGN" + r"\.md", "STYLE" + r"\.md", "DESIGN" + r" (section|§)", r"\.\./" + "shared"])
    )
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    cited = []
    for name in files:
        path = ROOT / name
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        cited += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert not cited, f"cite the fact or the Analysis plan page instead: {cited}"


def test_the_reproduce_page_states_the_measurements() -> None:
    """Its digest is the committed one, its repeat numbers are repeat_cpu.json's, its components power's."""
    import json

    page = (ROOT / "book" / "reproduce.md").read_text()
    digest = json.loads((ROOT / "tests" / "synthetic_small_seed0.sha256.json").read_text())["dataset_digest"]
    assert f"    {digest}\n" in page
    repeat = json.loads((ROOT / "benchmarks" / "results" / "repeat_cpu.json").read_text())
    same, other = repeat["same_threads_1_vs_1"], repeat["threads_1_vs_2"]
    assert (
        same["history_identical"]
        and same["state_identical"]
        and "| one thread, run twice | identical" in page
    )
    assert not other["history_identical"] and other["first_epoch_differing"] == 1
    (a, b), (sa, sb) = [x[0] for x in other["train_loss"]], [x[1] for x in other["selection_dice"]]
    assert f"training loss {a:.6f} against {b:.6f}" in page and f"epoch 2 {sa:.4f} against {sb:.4f}" in page
    assert f"largest difference {other['max_abs_state_difference']:.3f}" in page
    noise = power.default_noise()
    assert f"SD of {noise.sd_run:g} " in page and f"{noise.sd_case:g} between" in page
    assert f"{noise.sd_case_run:g} for case × run" in page


def test_the_untestable_rules_are_the_codes() -> None:
    from hie_core.report.analysis.variance import MIN_VERDICT_CASES

    assert f"fewer than {MIN_VERDICT_CASES} cases or run pairs" in PAGE
