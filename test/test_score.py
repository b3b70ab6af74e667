"""WER/CER scoring and alignments."""
from bljust.score.wer import score


def test_counts_and_alignment():
    refs = {"u1": "THE CAT SAT ON", "u2": "A B C", "u3": "X Y"}
    hyps = {"u1": "THE HAT SAT", "u2": "A XX B C"}
    summary, text = score(refs, hyps)
    w = summary["wer"]
    assert (w["ref_len"], w["sub"], w["dele"], w["ins"]) == (9, 1, 3, 1)
    assert w["rate"] == round(100 * 5 / 9, 2)
    assert summary["missing_hypotheses"] == ["u3"]
    assert summary["cer"]["ref_len"] == len("THE CAT SAT ON") + len("A B C") + len("X Y")
    block = text.split("\n\n")[0].splitlines()
    assert block == ["utt: u1  errors: 2 / 4 words", "REF: THE cat SAT on", "HYP: THE hat SAT **", "EDT:     S       D"]


def test_perfect():
    summary, _ = score({"a": "HELLO WORLD"}, {"a": "HELLO WORLD"})
    assert summary["wer"]["rate"] == 0.0 and summary["cer"]["errors"] == 0
