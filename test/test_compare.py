"""Comparison tables across experiments and seeds, and the paired significance against a reference."""
import json
import math
import random

import pytest
import yaml

from bljust.bin.compare import main as compare_main
from bljust.data.datadir import write_table
from bljust.score.compare import collect, pivot_table, significance, significance_table, table, utterance_counts
from bljust.score.significance import paired_bootstrap, paired_t, t_pvalue
from bljust.score.wer import score


def fake_exp(root, name, strategy, seed, wer, cer=10.0):
    exp = root / name
    (exp / "decode_test_greedy").mkdir(parents=True)
    (exp / "decode_test_greedy" / "scores.json").write_text(json.dumps(
        {"num_utts": 4, "wer": {"rate": wer}, "cer": {"rate": cer}}))
    (exp / "config.yaml").write_text(yaml.safe_dump({"strategy": strategy, "seed": seed}))
    (exp / "budget.json").write_text(json.dumps({"steps": 100, "train_steps": 100, "params_m": 1.5,
                                                 "labeled_batches": 100, "unlabeled_batches": 0, "labeled_hours": 0.5,
                                                 "unlabeled_hours": 0.0, "wall_s": 60.0}))
    return exp


def test_seeds_are_aggregated(tmp_path):
    exps = [fake_exp(tmp_path, f"asr_sup_seed{s}", "supervised", s, w) for s, w in zip(range(3), (10.0, 20.0, 30.0))]
    exps.append(fake_exp(tmp_path, "asr_bl", "bljust", 0, 5.0))
    text = table(collect(exps, "test"))
    assert "| sup | supervised | 3 | 20.00 ± 10.00 | 10.00 ± 0.00 | 100 (train 100) | 100 / 0 | 0.50 | 0.00 | 60 |" in text
    assert "| bl | bljust | 1 | 5.00 | 10.00 |" in text


def test_pivot_puts_strategies_side_by_side(tmp_path):
    exps = [fake_exp(tmp_path, "asr_c2_l4_pt_ft", "pt_ft", 0, 16.2), fake_exp(tmp_path, "asr_c2_l4_bljust", "bljust", 0, 13.1)]
    text = pivot_table(collect(exps, "test"))
    assert text.splitlines()[0] == "| setting | params (M) | pt_ft WER % | bljust WER % |"
    assert "| c2_l4 | 1.50 | 16.20 | 13.10 |" in text


def test_missing_scores_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "asr_x").mkdir()
    assert compare_main([str(tmp_path / "asr_x")]) == 1
    assert "no decode_test_*/scores.json" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        collect([tmp_path / "asr_x"], "test")


def test_several_decodings_need_a_choice(tmp_path, capsys):
    exp = fake_exp(tmp_path, "asr_bl", "bljust", 0, 30.0)
    (exp / "decode_test_beam").mkdir()
    (exp / "decode_test_beam" / "scores.json").write_text(json.dumps({"wer": {"rate": 25.0}, "cer": {"rate": 9.0}}))
    assert compare_main([str(exp)]) == 1
    assert "several decodings of test (beam, greedy); choose one with --decode" in capsys.readouterr().err
    assert collect([exp], "test", "greedy")[0]["wer"] == 30.0
    assert collect([exp], "test", "beam")[0]["wer"] == 25.0


def test_several_decodings_side_by_side_with_examples(tmp_path, capsys):
    exps = [fake_exp(tmp_path, f"asr_bl_seed{s}", "bljust", s, w) for s, w in ((0, 30.0), (1, 40.0))]
    for exp, w in zip(exps, (20.0, 24.0)):
        (exp / "decode_test_lm").mkdir()
        (exp / "decode_test_lm" / "scores.json").write_text(json.dumps({"wer": {"rate": w}, "cer": {"rate": 8.0}}))
        (exp / "decode_test_lm" / "alignments.txt").write_text(
            "utt: u1  errors: 0 / 2 words\nREF: a cat\nHYP: a cat\nEDT:\n\nutt: u2  errors: 1 / 1 words\nREF: dog\nHYP: dig\nEDT: S\n\n"
            "utt: u3  errors: 0 / 1 words\nREF: x\nHYP: x\nEDT:\n")
    text = table(collect(exps, "test", ["greedy", "lm"]))
    assert "| experiment | strategy | seeds | WER % (greedy) | CER % (greedy) | WER % (lm) | CER % (lm) |" in text
    assert "| bl | bljust | 2 | 35.00 ± 7.07 | 10.00 ± 0.00 | 22.00 ± 2.83 | 8.00 ± 0.00 |" in text
    assert compare_main([*map(str, exps), "--decode", "greedy", "lm", "--examples", "2"]) == 0
    out = capsys.readouterr().out
    assert "asr_bl_seed0, decode_test_lm:\n    utt: u1" in out and "    HYP: dig" in out and "u3" not in out


def test_plot_compares_systems(tmp_path, monkeypatch):
    """The PNG has the bars of every system and decoding, and validation curves from train_log.csv
    (rows of pre-training, with no labeled hours, left out)."""
    exps = [fake_exp(tmp_path, f"asr_sup_seed{s}", "supervised", s, 30.0 + s) for s in range(2)]
    exps.append(fake_exp(tmp_path, "asr_bl", "bljust", 0, 20.0))
    for exp in exps:
        (exp / "train_log.csv").write_text("steps,valid_cer,labeled_hours\n10,0.9,0.0\n20,0.5,0.1\n30,0.3,0.2\n")
    out = tmp_path / "cmp.png"
    assert compare_main([*map(str, exps), "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    import matplotlib.pyplot as plt
    from bljust.train import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))  # keep the figure to inspect it
    plots.plot_comparison(collect(exps, "test"), out)
    wer, _, curves = figures[0].axes
    heights = [round(p.get_height(), 2) for p in wer.patches]
    assert heights == [30.5, 20.0]  # mean over the two seeds, then bljust
    assert [list(line.get_xdata()) for line in curves.lines] == [[0.1, 0.2]] * 3
    assert [list(line.get_ydata()) for line in curves.lines][0] == [50.0, 30.0]
    plt.close(figures[0])


# ---------------------------------------------------------------------------------------
# --reference: paired significance

VOCAB = "the cat sat on a mat dog ran far away under blue sky red sun".split()


def make_test_set(n=200, seed=1):
    rng = random.Random(seed)
    return {f"spk{i % 4}-utt{i:03d}": " ".join(rng.choice(VOCAB) for _ in range(rng.randint(4, 12))) for i in range(n)}


def scored_exp(root, name, strategy, seed, refs, hyps, decode="greedy"):
    """An experiment whose test decoding was scored as stage 7 scores it (scores.json, alignments.txt, text)."""
    exp = fake_exp(root, name, strategy, seed, 0.0) if not (root / name).exists() else root / name
    out = exp / f"decode_test_{decode}"
    out.mkdir(exist_ok=True)
    summary, alignments = score(refs, hyps)
    (out / "scores.json").write_text(json.dumps(summary))
    (out / "alignments.txt").write_text(alignments)
    write_table(out / "text", hyps)
    return exp


def corrupt(refs, share, seed):
    """Each word replaced by a word outside the vocabulary with probability ``share``."""
    rng = random.Random(seed)
    return {u: " ".join("zzz" if rng.random() < share else w for w in t.split()) for u, t in refs.items()}


def test_identical_systems_differ_by_nothing(tmp_path):
    refs = make_test_set()
    hyps = corrupt(refs, 0.2, 0)
    exps = [scored_exp(tmp_path, "asr_sup", "supervised", 0, refs, hyps),
            scored_exp(tmp_path, "asr_bl", "bljust", 0, refs, hyps)]
    result = significance(collect(exps, "test"), "sup", resamples=2000)
    row = result["rows"][1]
    assert result["reference"] == "sup" and result["rows"][0]["reference"] and not row["reference"]
    for b in row["bootstrap"]:
        assert b.delta == 0 and b.low <= 0 <= b.high and b.p == 1.0


def test_clear_improvement_is_significant_and_reproducible(tmp_path):
    refs = make_test_set(200)
    base = corrupt(refs, 0.3, 0)
    # the system gets every word of 40 % of the utterances right, the rest as the baseline
    better = {u: (refs[u] if i % 5 < 2 else h) for i, (u, h) in enumerate(base.items())}
    exps = [scored_exp(tmp_path, "asr_sup", "supervised", 0, refs, base),
            scored_exp(tmp_path, "asr_bl", "bljust", 0, refs, better)]
    records = collect(exps, "test")
    wer, cer = significance(records, "asr_sup")["rows"][1]["bootstrap"]
    assert wer.delta < -5 and wer.high < 0 and wer.p < 0.01
    assert cer.delta < 0 and cer.high < 0 and cer.p < 0.01
    # exactly the same numbers on a second run, and the observed Δ is the difference of the WERs
    assert significance(records, "sup")["rows"][1]["bootstrap"] == [wer, cer]
    sup, bl = (json.loads((e / "decode_test_greedy" / "scores.json").read_text()) for e in exps)
    assert wer.delta == pytest.approx(100 * (bl["wer"]["errors"] - sup["wer"]["errors"]) / sup["wer"]["ref_len"])
    # the other way round: the same interval mirrored
    wer_back = significance(records, "bl")["rows"][0]["bootstrap"][0]
    assert (wer_back.delta, wer_back.low, wer_back.high, wer_back.p) == pytest.approx((-wer.delta, -wer.high, -wer.low, wer.p))


def test_bootstrap_numbers():
    # 10 utterances of 10 words, the reference wrong on 2 words each, the system on 1
    boot = paired_bootstrap([1] * 10, [2] * 10, [10] * 10, resamples=500)[0]
    assert (boot.delta, boot.low, boot.high, boot.p) == (-10.0, -10.0, -10.0, 0.0)
    assert boot.p_text() == "< 0.002"
    a = paired_bootstrap([[1, 3], [0, 0], [2, 5]], [[0, 1], [1, 2], [4, 4]], [[5, 20], [3, 9], [6, 30]], seed=7)
    assert a == paired_bootstrap([[1, 3], [0, 0], [2, 5]], [[0, 1], [1, 2], [4, 4]], [[5, 20], [3, 9], [6, 30]], seed=7)
    assert a[0].delta == pytest.approx(100 * (3 - 5) / 14) and a[1].delta == pytest.approx(100 * (8 - 7) / 59)
    assert a != paired_bootstrap([[1, 3], [0, 0], [2, 5]], [[0, 1], [1, 2], [4, 4]], [[5, 20], [3, 9], [6, 30]], seed=8)


def test_t_pvalue_matches_tables():
    # two-sided 5 % critical values of Student's t (any statistics table)
    for t, df in ((12.706, 1), (4.303, 2), (3.182, 3), (2.571, 5), (2.262, 9), (2.042, 30)):
        assert t_pvalue(t, df) == pytest.approx(0.05, abs=5e-4)
    assert t_pvalue(-2.262, 9) == t_pvalue(2.262, 9)
    assert t_pvalue(0.0, 4) == 1.0
    # closed forms: df 1 (Cauchy) and df 2
    for t in (0.3, 1.0, 2.5, 7.0):
        assert t_pvalue(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), abs=1e-12)
        assert t_pvalue(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)
    # a paired example by hand: d = (-2.0, -2.5, -2.0), mean -13/6, std 1/sqrt(12), t = -13, df 2
    res = paired_t([-2.0, -2.5, -2.0])
    assert (res.mean, res.std, res.t, res.df) == pytest.approx((-13 / 6, 1 / math.sqrt(12), -13.0, 2))
    assert round(res.p, 5) == 0.00587  # 1 - 13 / sqrt(171)
    assert paired_t([1.0, 1.0]).p == 0.0 and paired_t([0.0, 0.0]).p == 1.0


def seeded_refs():
    """100 utterances of 10 words."""
    return {f"s-u{i:03d}": " ".join(VOCAB[(i + j) % len(VOCAB)] for j in range(10)) for i in range(100)}


def with_errors(refs, count):
    """The first ``count`` words (in utterance order) wrong."""
    out, left = {}, count
    for u, t in refs.items():
        words = t.split()
        k = min(left, len(words))
        out[u] = " ".join(["zzz"] * k + words[k:])
        left -= k
    return out


def test_seeds_are_paired_by_number(tmp_path, capsys):
    refs = seeded_refs()
    # per-seed word errors out of 1000: reference 200, 220, 210; system 180, 195, 190
    exps = []
    for s, (e_ref, e_sys) in enumerate(((200, 180), (220, 195), (210, 190))):
        exps.append(scored_exp(tmp_path, f"asr_sup_seed{s}", "supervised", s, refs, with_errors(refs, e_ref)))
        exps.append(scored_exp(tmp_path, f"asr_bl_seed{s}", "bljust", s, refs, with_errors(refs, e_sys)))
    result = significance(collect(exps, "test"), "sup", resamples=1000)
    row = next(r for r in result["rows"] if r["group"] == "bl")
    wer_t = row["seed_t"][0]
    assert row["paired_seeds"] == [0, 1, 2]
    assert (wer_t.mean, wer_t.t, round(wer_t.p, 5)) == pytest.approx((-13 / 6, -13.0, 0.00587))
    # the bootstrap pools the seeds: its observed Δ is the difference of the mean WERs
    assert row["bootstrap"][0].delta == pytest.approx((565 - 630) / 3 / 10)
    text = significance_table(result)
    assert "| experiment | seeds | ΔWER [95 % CI] | p | ΔCER [95 % CI] | p | paired seeds | ΔWER per seed | p (t-test) |" in text
    assert "| sup | 3 | reference |  | reference |  |  | reference |" in text
    assert "| bl | 3 | -2.17 [" in text and "| 0 1 2 | -2.17 ± 0.29 | 0.0059 |" in text
    # a seed on one side only: no t-test for that pair of groups
    exps.append(scored_exp(tmp_path, "asr_one", "just", 0, refs, with_errors(refs, 150)))
    rows = significance(collect(exps, "test"), "sup", resamples=100)["rows"]
    assert "seed_t" not in rows[-1] and "| one | 1 | -6.00 [" in significance_table({**result, "rows": rows})


def test_cli_prints_the_differences(tmp_path, capsys):
    refs = make_test_set(60)
    base = corrupt(refs, 0.3, 0)
    exps = [scored_exp(tmp_path, "asr_sup", "supervised", 0, refs, base),
            scored_exp(tmp_path, "asr_bl", "bljust", 0, refs, corrupt(refs, 0.1, 1)),
            scored_exp(tmp_path, "asr_pt", "pt_ft", 0, refs, corrupt(refs, 0.29, 2))]
    out_md = tmp_path / "cmp.md"
    assert compare_main([*map(str, exps), "--reference", str(exps[0]), "--out", str(out_md)]) == 0
    out = capsys.readouterr().out
    assert "| experiment | strategy | seeds | test WER % | test CER % |" in out  # the usual table first
    assert "Against sup: Δ = system − reference in points; paired bootstrap over the 60 test utterances (10000 resamples" in out
    assert "| experiment | seeds | ΔWER [95 % CI] | p | ΔCER [95 % CI] | p |" in out
    assert "| sup | 1 | reference |  | reference |  |" in out
    assert out_md.read_text() == out
    # the reference text the scoring used gives the same numbers as alignments.txt
    write_table(tmp_path / "text", refs)
    assert compare_main([*map(str, exps), "--reference", "sup", "--ref_text", str(tmp_path / "text")]) == 0
    assert capsys.readouterr().out == out
    # without --reference: the table as before
    assert compare_main(list(map(str, exps))) == 0
    assert "Δ" not in capsys.readouterr().out


def test_cli_several_decodings(tmp_path, capsys):
    refs = make_test_set(30)
    exps = [scored_exp(tmp_path, "asr_sup", "supervised", 0, refs, corrupt(refs, 0.3, 0)),
            scored_exp(tmp_path, "asr_bl", "bljust", 0, refs, corrupt(refs, 0.2, 1))]
    for exp, share in zip(exps, (0.2, 0.1)):
        scored_exp(tmp_path, exp.name, "", 0, refs, corrupt(refs, share, 3), decode="lm")
    assert compare_main([*map(str, exps), "--decode", "greedy", "lm", "--reference", "sup", "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "| experiment | decoding | seeds | ΔWER [95 % CI] |" in out
    assert "| sup | greedy | 1 | reference |" in out and "| bl | lm | 1 | -" in out


def test_bad_references_are_one_line_errors(tmp_path, capsys):
    refs = make_test_set(20)
    exps = [scored_exp(tmp_path, "asr_sup", "supervised", 0, refs, corrupt(refs, 0.3, 0)),
            scored_exp(tmp_path, "asr_bl", "bljust", 0, refs, corrupt(refs, 0.2, 1))]
    assert compare_main([*map(str, exps), "--reference", "train_supervised"]) == 1
    assert capsys.readouterr().err == "ERROR: --reference train_supervised: not among the compared experiments (sup, bl)\n"
    # a reference text other than the one the scoring used
    other = dict(refs)
    other[next(iter(other))] = "something else entirely here"
    write_table(tmp_path / "text", other)
    assert compare_main([*map(str, exps), "--reference", "sup", "--ref_text", str(tmp_path / "text")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and err.count("\n") == 1 and "is it the reference text the scoring used?" in err
    # decodings of different utterances cannot be paired
    part = dict(list(refs.items())[:10])
    scored_exp(tmp_path, "asr_sup", "", 0, refs, corrupt(refs, 0.2, 1), decode="other")
    scored_exp(tmp_path, "asr_bl", "", 0, part, corrupt(part, 0.2, 1), decode="other")
    assert compare_main([*map(str, exps), "--decode", "other", "--reference", "sup"]) == 1
    assert capsys.readouterr().err == (f"ERROR: {exps[1]}/decode_test_other: not the same test utterances as "
                                       f"{exps[0]}/decode_test_other (decodings of different sets cannot be paired)\n")


def test_case_only_errors_need_the_reference_text(tmp_path, capsys):
    """alignments.txt lower-cases edited words, so characters that differ only in case cannot be
    counted from it: the totals no longer match scores.json, and --ref_text gives them exactly."""
    refs = {"a-1": "The Cat sat", "a-2": "On The mat"}
    exps = [scored_exp(tmp_path, "asr_sup", "supervised", 0, refs, {"a-1": "the cat sat", "a-2": "On The mat"}),
            scored_exp(tmp_path, "asr_bl", "bljust", 0, refs, {"a-1": "The Cat sat", "a-2": "on the mat"})]
    with pytest.raises(ValueError, match="case-only or spacing differences are lost there; give the reference text"):
        utterance_counts(exps[0] / "decode_test_greedy")
    utts, counts = utterance_counts(exps[0] / "decode_test_greedy", refs)
    assert utts == ["a-1", "a-2"] and counts.tolist() == [[2, 3, 2, 11], [0, 3, 0, 10]]
    write_table(tmp_path / "text", refs)
    assert compare_main([*map(str, exps), "--reference", "sup", "--ref_text", str(tmp_path / "text")]) == 0
    assert "| bl | 1 | +0.00 [" in capsys.readouterr().out
