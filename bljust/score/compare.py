"""Compare experiments: test WER/CER next to each run's training budget, seeds aggregated;
with a reference system, the paired significance of each other system's difference to it."""
from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

import numpy as np
import yaml

from bljust.score.results import budget
from bljust.score.significance import RESAMPLES, SEED, format_p, paired_bootstrap, paired_t


def _scores_file(exp_dir: Path, test_set: str, decode: str | None) -> Path:
    """scores.json of ``decode_<test_set>_<decode>``; without ``decode`` the only decoding there is."""
    pattern = f"decode_{test_set}_{decode or '*'}/scores.json"
    found = sorted(exp_dir.glob(pattern))
    if not found:
        raise FileNotFoundError(f"{exp_dir}: no {pattern} (run the decoding and scoring stages)")
    if len(found) > 1:
        names = ", ".join(p.parent.name.removeprefix(f"decode_{test_set}_") for p in found)
        raise FileNotFoundError(f"{exp_dir}: several decodings of {test_set} ({names}); choose one with --decode")
    return found[0]


def collect(exp_dirs: list[str | os.PathLike], test_set: str, decode: str | list[str] | None = None) -> list[dict]:
    """One record per experiment: name, group (its config without the seed), budget, and for each
    decoding in ``decode`` (several names: several decodings side by side) its WER and CER and
    its folder (``decode_dirs``); ``wer`` and ``cer`` are the first decoding's."""
    names = [decode] if isinstance(decode, str) or decode is None else list(decode)
    records = []
    for exp_dir in map(Path, exp_dirs):
        rates, decode_dirs = {}, {}
        for name in names:
            found = _scores_file(exp_dir, test_set, name)
            scores = json.loads(found.read_text())
            rates[name] = (scores["wer"]["rate"], scores["cer"]["rate"])
            decode_dirs[name] = found.parent
        config = yaml.safe_load((exp_dir / "config.yaml").read_text())
        seed = config.pop("seed", 0)
        first = rates[names[0]]
        records.append({
            "name": exp_dir.name, "dir": exp_dir, "group": re.sub(r"_seed\d+$", "", exp_dir.name.removeprefix("asr_")),
            "strategy": config["strategy"], "seed": seed, "wer": first[0], "cer": first[1], "rates": rates,
            "budget": budget(exp_dir), "decode_dirs": decode_dirs,
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
             + " | steps (per phase) | labeled / unlabeled batches | labeled h | unlabeled h | train time s (mean) |",
             "|---|---|---|" + "---|" * len(rate_heads) + "---|---|---|---|---|"]
    for group, rs in groups.items():
        b = rs[0]["budget"]
        phases = ", ".join(f"{k[:-6]} {v}" for k, v in b.items() if k.endswith("_steps"))
        wall = statistics.mean(r["budget"].get("wall_s", 0.0) for r in rs)
        rates = " | ".join(_mean_std([r["rates"][name][i] for r in rs]) for name in decodes for i in (0, 1))
        batches = f"{b.get('labeled_batches', '?')} / {b.get('unlabeled_batches', '?')}"
        lines.append(f"| {group} | {rs[0]['strategy']} | {len(rs)} | {rates} | {b.get('steps', '?')} ({phases}) | "
                     f"{batches} | {b.get('labeled_hours', 0):.2f} | {b.get('unlabeled_hours', 0):.2f} | {wall:.0f} |")
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


# ---------------------------------------------------------------------------------------
# Paired significance against a reference system

_UTT = re.compile(r"^utt: (\S+)  errors: (\d+) / (\d+) words$")


def _alignment_texts(path: Path) -> tuple[list[str], list[tuple[int, int]], list[str], list[str]]:
    """From the scoring stage's alignments.txt: utterance ids, (word errors, reference words)
    as its ``utt:`` lines say, and the reference and hypothesis rebuilt from the REF/HYP
    columns (a column whose edit is I has no reference word, D no hypothesis word; words of an
    edited column are lower-cased there)."""
    utts, words, refs, hyps = [], [], [], []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = _UTT.match(lines[i])
        if not m:
            if lines[i].strip():
                raise ValueError(f"{path}:{i + 1}: expected 'utt: <id>  errors: <n> / <m> words', got {lines[i][:60]!r}")
            i += 1
            continue
        block = lines[i + 1:i + 4]
        if len(block) < 3 or [b[:4] for b in block] != ["REF:", "HYP:", "EDT:"]:
            raise ValueError(f"{path}:{i + 2}: expected REF:, HYP: and EDT: lines after the utt: line")
        ref_line, hyp_line, edit_line = (b[5:] for b in block)
        starts = [c.start() for c in re.finditer(r"\S+", ref_line)]  # every column has a REF entry
        ref_cols, hyp_cols = ref_line.split(), hyp_line.split()
        edits = [edit_line[s] if s < len(edit_line) else " " for s in starts]
        n_err, n_words = int(m.group(2)), int(m.group(3))
        if (len(hyp_cols) != len(ref_cols) or sum(e in "SDI" for e in edits) != n_err
                or sum(e != "I" for e in edits) != n_words):
            raise ValueError(f"{path}:{i + 1}: the REF/HYP/EDT columns of {m.group(1)} do not match its utt: line")
        utts.append(m.group(1))
        words.append((n_err, n_words))
        refs.append(" ".join(w for w, e in zip(ref_cols, edits) if e != "I"))
        hyps.append(" ".join(w for w, e in zip(hyp_cols, edits) if e != "D"))
        i += 4
    return utts, words, refs, hyps


def _per_utterance(refs: list[str], hyps: list[str], unit: str) -> np.ndarray:
    """(errors, reference length) per utterance, as bljust.score.wer counts them (jiwer's default
    transforms: words split on whitespace; characters of the stripped text, spaces included)."""
    import jiwer

    out = (jiwer.process_words if unit == "words" else jiwer.process_characters)(refs, hyps)
    counts = np.zeros((len(refs), 2), dtype=np.int64)
    for i, chunks in enumerate(out.alignments):
        counts[i, 0] = sum(max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
                           for c in chunks if c.type != "equal")
        counts[i, 1] = len(out.references[i])
    return counts


def utterance_counts(decode_dir: str | os.PathLike, ref_text: dict[str, str] | None = None,
                     ref_name: str = "--ref_text") -> tuple[list[str], np.ndarray]:
    """Per-utterance (word errors, reference words, character errors, reference characters) of a
    scored decoding, utterances in the scoring order.

    With ``ref_text`` (utt -> reference, the text the scoring used) they are recomputed from the
    decoding's ``text``; without, from ``alignments.txt`` (word counts as written there;
    characters from the reference and hypothesis rebuilt from its columns, exact unless an edited
    word differs only in case or the reference has runs of spaces). Either way they must add up to
    ``scores.json``'s totals, or this raises ValueError saying why.
    """
    decode_dir = Path(decode_dir)
    scores = json.loads((decode_dir / "scores.json").read_text())
    if ref_text is not None:
        from bljust.data.datadir import read_table

        hyps = read_table(decode_dir / "text", allow_empty_value=True)
        unknown = [u for u in hyps if u not in ref_text]
        if unknown:
            raise ValueError(f"{decode_dir}/text: {len(unknown)} hypotheses for utterances that are not in "
                             f"{ref_name}, e.g. '{unknown[0]}'")
        utts = sorted(ref_text, key=str.encode)
        refs, hyp_list = [ref_text[u] for u in utts], [hyps.get(u, "") for u in utts]
        words = _per_utterance(refs, hyp_list, "words")
        source = f"{ref_name} and {decode_dir}/text"
    else:
        path = decode_dir / "alignments.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{decode_dir}: no alignments.txt (run the scoring stage)")
        utts, word_list, refs, hyp_list = _alignment_texts(path)
        words = np.array(word_list, dtype=np.int64).reshape(-1, 2)
        source = str(path)
    counts = np.concatenate([words, _per_utterance(refs, hyp_list, "chars")], axis=1)
    for j, unit in ((0, "wer"), (2, "cer")):
        want = scores.get(unit, {})
        if "errors" in want and "ref_len" in want:
            got = (int(counts[:, j].sum()), int(counts[:, j + 1].sum()))
            if got != (want["errors"], want["ref_len"]):
                hint = ("is it the reference text the scoring used?" if ref_text is not None else
                        "case-only or spacing differences are lost there; give the reference text "
                        "the scoring used with --ref_text")
                raise ValueError(f"{decode_dir}: per-utterance {unit.upper()} counts from {source} add up to "
                                 f"{got[0]}/{got[1]}, but scores.json has {want['errors']}/{want['ref_len']} ({hint})")
    return utts, counts


def resolve_reference(records: list[dict], reference: str) -> str:
    """The group ``reference`` names: a group (tag without ``_seed<N>``), an experiment's folder
    name, or its path (an experiment stands for its group, seeds included)."""
    for r in records:
        if reference in (r["group"], r["name"], f"asr_{r['group']}"):
            return r["group"]
    for r in records:
        if Path(reference).resolve() == Path(r["dir"]).resolve():
            return r["group"]
    groups = ", ".join(by_group(records))
    raise ValueError(f"--reference {reference}: not among the compared experiments ({groups})")


def significance(records: list[dict], reference: str, ref_text: dict[str, str] | None = None,
                 resamples: int = RESAMPLES, seed: int = SEED, ref_name: str = "--ref_text") -> dict:
    """Every group against the ``reference`` group, for each decoding.

    Utterance bootstrap (``bljust.score.significance.paired_bootstrap``, the same draws for every
    system): each utterance's errors are averaged over a group's seeds (the pooled seeds: summing
    them over seeds with the words counted once per seed gives the same rates), so the observed
    Δ is the difference of the groups' mean WER (CER). Seeds: when both groups have at least 2
    seeds in common, the per-seed Δ of the seeds with the same number, their mean ± std and a
    two-sided paired t-test. Returns {"reference", "utterances", "resamples", "rows": [...]}.
    """
    group_ref = resolve_reference(records, reference)
    groups = by_group(records)
    decodes = list(records[0]["rates"])
    counts: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    utt_order: dict[str, tuple[list[str], Path]] = {}
    for group, rs in groups.items():
        for name in decodes:
            per_seed = {}
            for r in rs:
                decode_dir = r["decode_dirs"][name]
                utts, c = utterance_counts(decode_dir, ref_text, ref_name)
                if name not in utt_order:
                    utt_order[name] = (utts, decode_dir)
                elif utts != utt_order[name][0]:
                    raise ValueError(f"{decode_dir}: not the same test utterances as {utt_order[name][1]} "
                                     "(decodings of different sets cannot be paired)")
                if r["seed"] in per_seed:
                    raise ValueError(f"{r['dir']}: seed {r['seed']} twice in group {group}")
                per_seed[r["seed"]] = c
            counts[(group, name)] = per_seed
    rows = []
    for name in decodes:
        ref_seeds = counts[(group_ref, name)]
        ref_stack = np.stack(list(ref_seeds.values()))  # (seeds, utts, 4)
        lengths = ref_stack[0][:, [1, 3]]
        for group in groups:
            seeds = counts[(group, name)]
            row = {"group": group, "decode": name, "seeds": len(seeds), "reference": group == group_ref}
            stack = np.stack(list(seeds.values()))
            if not all(np.array_equal(c[:, [1, 3]], lengths) for c in stack):
                raise ValueError(f"{groups[group][0]['decode_dirs'][name]}: the references' word or character counts "
                                 f"differ from those of {group_ref} (scored against another reference text?)")
            if not row["reference"]:
                row["bootstrap"] = paired_bootstrap(stack.mean(0)[:, [0, 2]], ref_stack.mean(0)[:, [0, 2]], lengths,
                                                    resamples=resamples, seed=seed)
                common = sorted(set(seeds) & set(ref_seeds))
                if len(common) >= 2:
                    deltas = [[100.0 * (seeds[s][:, j].sum() - ref_seeds[s][:, j].sum()) / max(lengths[:, j // 2].sum(), 1)
                               for s in common] for j in (0, 2)]
                    row["paired_seeds"] = common
                    row["seed_t"] = [paired_t(d) for d in deltas]
            rows.append(row)
    return {"reference": group_ref, "utterances": len(utt_order[decodes[0]][0]), "resamples": resamples, "rows": rows}


def significance_table(result: dict, test_set: str = "test") -> str:
    """Markdown: ΔWER and ΔCER (system − reference, points) with the bootstrap's 95 % CI and p, and,
    where both sides have paired seeds, the per-seed Δ's mean ± std and the paired t-test's p.
    ``test_set``: the scored set's name, for the text."""
    rows = result["rows"]
    several = len({r["decode"] for r in rows}) > 1
    with_seeds = any("seed_t" in r for r in rows)
    heads = ["experiment", *(["decoding"] if several else []), "seeds", "ΔWER [95 % CI]", "p", "ΔCER [95 % CI]", "p"]
    if with_seeds:
        heads += ["paired seeds", "ΔWER per seed", "p (t-test)", "ΔCER per seed", "p (t-test)"]
    lines = [
        f"Against {result['reference']}: Δ = system − reference in points; paired bootstrap over the "
        f"{result['utterances']} {test_set} utterances ({result['resamples']} resamples, each system's seeds pooled "
        "per utterance), 95 % percentile interval, p two-sided (twice the share of resamples whose Δ is "
        "not of the observed sign)" + ("; per seed: Δ of the seeds with the same number, mean ± std, "
                                       "two-sided paired t-test" if with_seeds else "") + ".",
        "",
        "| " + " | ".join(heads) + " |",
        "|" + "---|" * len(heads),
    ]
    for r in rows:
        cells = [r["group"], *([str(r["decode"])] if several else []), str(r["seeds"])]
        if r["reference"]:
            cells += ["reference", "", "reference", ""]
            if with_seeds:
                cells += ["", "reference", "", "reference", ""]
        else:
            for b in r["bootstrap"]:
                cells += [f"{b.delta:+.2f} [{b.low:+.2f}, {b.high:+.2f}]", b.p_text()]
            if with_seeds and "seed_t" in r:
                cells.append(" ".join(map(str, r["paired_seeds"])))
                for t in r["seed_t"]:
                    cells += [f"{t.mean:+.2f} ± {t.std:.2f}", format_p(t.p)]
            elif with_seeds:
                cells += ["-"] * 5
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
