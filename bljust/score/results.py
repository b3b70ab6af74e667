"""Write an experiment's RESULTS.md: environment, exact command, config, budget and scores."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

from bljust.fileio import atomic_write_text


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> list[str]:
    import torch
    import torchaudio

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return [
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- bljust commit: {_git_commit()}",
        f"- python {platform.python_version()}, torch {torch.__version__}, torchaudio {torchaudio.__version__}",
        f"- device: {device}",
    ]


def score_table(exp_dir: Path) -> list[str]:
    """Markdown table rows for every ``decode_*/scores.json`` under ``exp_dir``."""
    rows = ["| decode dir | #utts | #words | WER % | sub | del | ins | CER % |", "|---|---|---|---|---|---|---|---|"]
    for scores in sorted(exp_dir.glob("decode_*/scores.json")):
        s = json.loads(scores.read_text())
        w, c = s["wer"], s["cer"]
        rows.append(f"| {scores.parent.name} | {s['num_utts']} | {w['ref_len']} | {w['rate']:.2f} | {w['sub']} | "
                    f"{w['dele']} | {w['ins']} | {c['rate']:.2f} |")
    return rows


def budget(exp_dir: Path) -> dict:
    """The training budget (steps per phase, hours seen, wall time) from ``budget.json``."""
    path = exp_dir / "budget.json"
    return json.loads(path.read_text()) if path.exists() else {}


def budget_text(b: dict) -> str:
    if not b:
        return "(training not finished)"
    phases = ", ".join(f"{k[:-6]} {v}" for k, v in b.items() if k.endswith("_steps"))
    return (f"{b.get('params_m', float('nan')):.2f} M parameters (encoder + CTC head); {b['steps']} steps ({phases}), {b['labeled_hours']:.2f} h labeled + {b['unlabeled_hours']:.2f} h "
            f"unlabeled seen, {b['wall_s']:.0f} s")


def write_results(exp_dir: str | os.PathLike) -> str:
    exp_dir = Path(exp_dir)
    command = (exp_dir / "run.sh").read_text().strip().splitlines()[-1] if (exp_dir / "run.sh").exists() else "(unknown)"
    config = (exp_dir / "config.yaml").read_text() if (exp_dir / "config.yaml").exists() else "(missing)\n"
    text = "\n".join([
        f"# Results: {exp_dir.name}", "", "## Environment", *environment(), "",
        "## Command (run from the recipe folder)", "```sh", command, "```", "",
        "## Training budget", f"- {budget_text(budget(exp_dir))}", "", "## Scores", *score_table(exp_dir), "",
        "## Config", "```yaml", config.rstrip(), "```", "",
    ])
    atomic_write_text(exp_dir / "RESULTS.md", text)
    return text
