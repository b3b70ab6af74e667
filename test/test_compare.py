"""Comparison tables across experiments and seeds."""
import json

import pytest
import yaml

from bljust.bin.compare import main as compare_main
from bljust.score.compare import collect, pivot_table, table


def fake_exp(root, name, strategy, seed, wer, cer=10.0):
    exp = root / name
    (exp / "decode_test_greedy").mkdir(parents=True)
    (exp / "decode_test_greedy" / "scores.json").write_text(json.dumps(
        {"num_utts": 4, "wer": {"rate": wer}, "cer": {"rate": cer}}))
    (exp / "config.yaml").write_text(yaml.safe_dump({"strategy": strategy, "seed": seed}))
    (exp / "budget.json").write_text(json.dumps({"steps": 100, "train_steps": 100, "params_m": 1.5,
                                                 "labeled_hours": 0.5, "unlabeled_hours": 0.0, "wall_s": 60.0}))
    return exp


def test_seeds_are_aggregated(tmp_path):
    exps = [fake_exp(tmp_path, f"asr_sup_seed{s}", "supervised", s, w) for s, w in zip(range(3), (10.0, 20.0, 30.0))]
    exps.append(fake_exp(tmp_path, "asr_bl", "bljust", 0, 5.0))
    text = table(collect(exps, "test"))
    assert "| sup | supervised | 3 | 20.00 ± 10.00 | 10.00 ± 0.00 | 100 (train 100) | 0.50 | 0.00 | 60 |" in text
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
