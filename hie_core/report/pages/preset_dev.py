"""How the quick preset was checked on the development set: the committed measurements, in words.

``benchmarks/quick_preset.py`` trains variants of the quick preset on the development set (the
synthetic ``small`` set of generator seed 1, which no reported split touches) and writes their
test Dice over the cases with a lesion, per seed, with the decision of its rule (fixed before
the runs) to ``benchmarks/results/quick_preset_dev.json`` (:data:`DEV_RESULTS`). The deviations
table on the Methods page and the Limitations read it from there (:func:`dev_check_words`), so
the numbers in the book are the file's, never typed into prose.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["DEV_RESULTS", "dev_check", "dev_check_words"]

#: The development-set check of the quick preset, relative to the project root.
DEV_RESULTS = Path("benchmarks") / "results" / "quick_preset_dev.json"
_PRESET_ROW = "(quick preset)"
#: Variants in words, where the ``key=value`` form says little to a reader.
_WORDS = {"lr=0.001": "the seed's learning rate 1e-3", "zadc_norm=volume": "ZADC z-scored per volume (the seed's)",
          "norm=batch": "BatchNorm (the seed's)", "mirror_axes=none": "no mirroring (the seed's)"}  # fmt: skip


def dev_check(root: str | Path | None = None) -> dict | None:
    """The committed development-set check (:data:`DEV_RESULTS` under ``root``, default the project root); None without one."""
    base = Path(root) if root is not None else Path(__file__).resolve().parents[3]
    path = base / DEV_RESULTS
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "decision" in data else None


def _variant(name: str) -> str:
    return "the preset" if name == _PRESET_ROW else _WORDS.get(name, f"`{name}`")


def _dice(entry: dict, against: bool) -> str:
    seeds = " / ".join(f"{d:.3f}" for d in entry["dice"])
    difference = entry.get("difference", math.nan)
    versus = f"; {difference:+.3f} against the preset" if against and math.isfinite(difference) else ""
    return f"{entry['mean_dice']:.3f} ({'seeds ' if len(entry['dice']) > 1 else 'seed '}{seeds}{versus})"


def dev_check_words(check: dict | None) -> str:
    """One sentence: what was compared on the development set, each variant's Dice, and what the rule decided.

    Empty when there is no check.
    """
    if not check:
        return ""
    decision = check["decision"]
    variants = decision["variants"]
    rows = check.get("rows", [])
    n_cases = {r.get("n_lesion_cases") for r in rows if r.get("n_lesion_cases")}
    cases = (
        f"{n_cases.pop()} test cases with a lesion" if len(n_cases) == 1 else "its test cases with a lesion"
    )
    losses = sorted({r.get("loss") for r in rows if r.get("loss")})
    shown = ", ".join(f"{_variant(name)} {_dice(e, name != _PRESET_ROW)}" for name, e in variants.items())
    adopted = decision.get("adopted") or []
    outcome = (f"so {', '.join(_variant(n) for n in adopted)} replaced the preset's value" if adopted
               else "so the preset's values were kept")  # fmt: skip
    return (f"On the development set (the synthetic set of generator seed 1, which no reported split touches; "
            f"{cases}, loss {', '.join(losses) or 'dice'}, one CPU thread per run), mean test Dice: {shown}. "
            f"The rule, fixed before these runs: {decision['rule']}; {outcome}.")  # fmt: skip
