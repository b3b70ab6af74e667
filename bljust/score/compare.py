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


def collect(exp_dirs: list[str | os.PathLike], test_set: str, decode: str | list[str] | None = None) -> list[dict]:
    """One record per experiment: name, group (its config without the seed), budget, and for each
    decoding in ``decode`` (several names: several decodings side by side) its WER and CER;
    ``wer`` and ``cer`` are the first decoding's."""
    names = [decode] if isinstance(decode, str) or decode is None else list(decode)
    records = []
    for exp_dir in map(Path, exp_dirs):
        rates = {}
        for name in names:
            scores = _scores(exp_dir, test_set, name)
            rates[name] = (scores["wer"]["rate"], scores["cer"]["rate"])
        config = yaml.safe_load((exp_dir / "config.yaml").read_text())
        seed = config.pop("seed", 0)
        first = rates[names[0]]
        records.append({
            "name": exp_dir.name, "dir": exp_dir, "group": re.sub(r"_seed\d+$", "", exp_dir.name.removeprefix("asr_")),
            "strategy": config["strategy"], "seed": seed, "wer": first[0], "cer": first[1], "rates": rates,
            "budget": budget(exp_dir),
        })
    return records


def by_group(records: list[dict]) -> dict[str, list[dict]]:
    """The records of each group (a config's seeds), groups in first-seen order."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r)
    return groups


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table(records: list[dict]) -> str:
    """Markdown table, one row per group of seeds (mean ± sample std when several)."""
    groups = by_group(records)
    decodes = list(records[0]["rates"]) if records else []
    if len(decodes) == 1:
        rate_heads = ["test WER %", "test CER %"]
    else:
        rate_heads = [f"{kind} % ({name})" for name in decodes for kind in ("WER", "CER")]
    lines = ["| experiment | strategy | seeds | " + " | ".join(rate_heads)
             + " | steps (per phase) | labeled h | unlabeled h | train time s (mean) |",
             "|---|---|---|" + "---|" * len(rate_heads) + "---|---|---|---|"]
    for group, rs in groups.items():
        b = rs[0]["budget"]
        phases = ", ".join(f"{k[:-6]} {v}" for k, v in b.items() if k.endswith("_steps"))
        wall = statistics.mean(r["budget"].get("wall_s", 0.0) for r in rs)
        rates = " | ".join(_mean_std([r["rates"][name][i] for r in rs]) for name in decodes for i in (0, 1))
        lines.append(f"| {group} | {rs[0]['strategy']} | {len(rs)} | {rates} | {b.get('steps', '?')} ({phases}) | "
                     f"{b.get('labeled_hours', 0):.2f} | {b.get('unlabeled_hours', 0):.2f} | {wall:.0f} |")
    return "\n".join(lines)


def examples(records: list[dict], test_set: str, count: int = 2) -> str:
    """``count`` aligned test utterances (reference, hypothesis, edits) of each group's first
    experiment, for each of its decodings, from the scoring stage's alignments.txt: spread evenly
    over the sorted test set, so several speakers show (the same utterances for every system)."""
    out = []
    for r in (rs[0] for rs in by_group(records).values()):
        for name in r["rates"]:
            found = sorted(r["dir"].glob(f"decode_{test_set}_{name or '*'}/alignments.txt"))
            if not found:
                continue
            blocks = found[0].read_text().strip().split("\n\n")
            blocks = [blocks[i * len(blocks) // count] for i in range(min(count, len(blocks)))]
            out += [f"{r['name']}, {found[0].parent.name}:", *("    " + b.replace("\n", "\n    ") for b in blocks), ""]
    return "\n".join(out).rstrip()


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
