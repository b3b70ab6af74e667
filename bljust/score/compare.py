"""Compare experiments: test WER/CER next to each run's training budget, seeds aggregated."""
from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

import yaml

from bljust.score.results import budget


def _scores(exp_dir: Path, test_set: str, decode: str | None) -> dict:
    """scores.json of ``decode_<test_set>_<decode>``; without ``decode`` the only decoding there is."""
    pattern = f"decode_{test_set}_{decode or '*'}/scores.json"
    found = sorted(exp_dir.glob(pattern))
    if not found:
        raise FileNotFoundError(f"{exp_dir}: no {pattern} (run the decoding and scoring stages)")
    if len(found) > 1:
        names = ", ".join(p.parent.name.removeprefix(f"decode_{test_set}_") for p in found)
        raise FileNotFoundError(f"{exp_dir}: several decodings of {test_set} ({names}); choose one with --decode")
    return json.loads(found[0].read_text())


def collect(exp_dirs: list[str | os.PathLike], test_set: str, decode: str | None = None) -> list[dict]:
    """One record per experiment: name, group (its config without the seed), scores and budget."""
    records = []
    for exp_dir in map(Path, exp_dirs):
        scores = _scores(exp_dir, test_set, decode)
        config = yaml.safe_load((exp_dir / "config.yaml").read_text())
        seed = config.pop("seed", 0)
        records.append({
            "name": exp_dir.name, "group": re.sub(r"_seed\d+$", "", exp_dir.name.removeprefix("asr_")),
            "strategy": config["strategy"], "seed": seed, "wer": scores["wer"]["rate"], "cer": scores["cer"]["rate"],
            "budget": budget(exp_dir),
        })
    return records


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table(records: list[dict]) -> str:
    """Markdown table, one row per group of seeds (mean ± sample std when several)."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r)
    lines = ["| experiment | strategy | seeds | test WER % | test CER % | steps (per phase) | labeled h | unlabeled h | train time s (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for group, rs in groups.items():
        b = rs[0]["budget"]
        phases = ", ".join(f"{k[:-6]} {v}" for k, v in b.items() if k.endswith("_steps"))
        wall = statistics.mean(r["budget"].get("wall_s", 0.0) for r in rs)
        lines.append(f"| {group} | {rs[0]['strategy']} | {len(rs)} | {_mean_std([r['wer'] for r in rs])} | "
                     f"{_mean_std([r['cer'] for r in rs])} | {b.get('steps', '?')} ({phases}) | "
                     f"{b.get('labeled_hours', 0):.2f} | {b.get('unlabeled_hours', 0):.2f} | {wall:.0f} |")
    return "\n".join(lines)


def pivot_table(records: list[dict]) -> str:
    """Rows: experiment names without their strategy suffix; columns: test WER per strategy.

    For sweeps whose tags end in the strategy name (``c2_l4_pt_ft``, ``c2_l4_bljust``),
    this gives the papers' layout: one row per setting, PT+FT and BL-JUST side by side.
    """
    strategies = list(dict.fromkeys(r["strategy"] for r in records))
    rows: dict[str, dict[str, list[float]]] = {}
    params: dict[str, float] = {}
    for r in records:
        key = r["group"].removesuffix(f"_{r['strategy']}")
        rows.setdefault(key, {}).setdefault(r["strategy"], []).append(r["wer"])
        params[key] = r["budget"].get("params_m", float("nan"))
    lines = ["| setting | params (M) | " + " | ".join(f"{s} WER %" for s in strategies) + " |",
             "|---|---|" + "---|" * len(strategies)]
    for key, cells in rows.items():
        lines.append(f"| {key} | {params[key]:.2f} | " + " | ".join(_mean_std(cells[s]) if s in cells else "-" for s in strategies) + " |")
    return "\n".join(lines)
