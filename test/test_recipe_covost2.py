"""The covost2 recipe: normalisation, CoVoST/Common Voice parsing, and the recipe end to end.

The end-to-end part serves fixture CoVoST 2 archives from 127.0.0.1 and points db.sh at a
fixture Common Voice 4 folder (two languages, espeak-ng speech as 48 kHz mp3).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bljust.data.corpora import CorpusError
from bljust.data.corpora.covost2 import check_commonvoice, prepare_covost2, read_tsv, speaker_id, utterance_id
from bljust.data.datadir import read_table
from bljust.data.espeak import EspeakSynthesizer
from bljust.data.validate import validate_data_dir
from bljust.text.normalize import normalize
from fixture_covost2 import SENTENCES, build_commonvoice, build_covost_archives, clip_name, clips_of
from http_server import serve_directory

REPO = Path(__file__).resolve().parents[1]
LANGS = tuple(SENTENCES)  # nl, ar
TINY_BLJUST = """\
encoder: cnn_lstm
encoder_conf: {cnn_layers: 2, latent_dim: 32, lstm_layers: 1, lstm_units: 32, dropout: 0.0}
unsup_conf: {steps: 2, num_negatives: 4, ar_dim: 32}
strategy: bljust
max_epochs: 2
phases:
  explore: {steps: 1, lr: 1.0e-3}
  joint: {steps: 2, lr: 1.0e-3}
  finetune: {steps: 2, lr: 1.0e-4}
batch: {max_frames: 4000}
diag_interval: 2
"""


# ---------------------------------------------------------------------------------------
# Normalisation

@pytest.mark.parametrize("lang, raw, expected", [
    ("nl", "Hij zei: „Ga naar huis!”", "hij zei ga naar huis"),
    ("nl", '"Kom maar binnen," zei hij.', "kom maar binnen zei hij"),
    ("nl", "Zo’n mooie dag", "zo'n mooie dag"),  # apostrophe inside a word kept, typographic one unified
    ("nl", "Het is ’s avonds", "het is s avonds"),  # ... not at a word's edge
    ("nl", "Één  café\t(twee)", "één café twee"),  # accents kept, brackets and spaces gone
    ("nl", "ﬁets ＡＢ１", "fiets ab1"),  # NFKC: ligature, full-width letters and digits
    ("ar", "مرحبًا، كيف حالك؟", "مرحبا كيف حالك"),  # Arabic comma and question mark, tanween
    ("ar", "العـــربية؛ «جميلة»", "العربية جميلة"),  # tatweel, Arabic semicolon, guillemets
    ("mn", "Сайн байна уу?", "сайн байна уу"),  # Cyrillic has case
    ("tr", "IŞIK İstanbul", "ışık istanbul"),  # dotless and dotted i kept apart
    ("sv-SE", "Hej, världen!", "hej världen"),  # region subtags are ignored
    ("fa", "می\u200cخواهم.", "می\u200cخواهم"),  # the zero-width non-joiner is Persian spelling
    ("nl", "...!?", ""),
])
def test_normalize(lang, raw, expected):
    assert normalize(raw, lang) == expected


# ---------------------------------------------------------------------------------------
# Parsing and data preparation without audio decoding

def _write_tsv(path: Path, header: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in [header, *rows]), encoding="utf-8")


def test_read_tsv_keeps_quotes_and_names_bad_lines(tmp_path):
    # An opening quote without its closing one would make a quoting reader swallow the tabs.
    _write_tsv(tmp_path / "a.tsv", "path\tsentence\tsplit", ['a.mp3\t"Kom maar,\ttrain', 'b.mp3\tZo"n\tdev'])
    rows = read_tsv(tmp_path / "a.tsv", ("path", "split"))
    assert rows == [{"path": "a.mp3", "sentence": '"Kom maar,', "split": "train"},
                    {"path": "b.mp3", "sentence": 'Zo"n', "split": "dev"}]
    _write_tsv(tmp_path / "b.tsv", "path\tsplit", ["a.mp3\ttrain", "b.mp3"])
    with pytest.raises(CorpusError, match=r"b\.tsv:3: 1 tab-separated fields"):
        read_tsv(tmp_path / "b.tsv", ("path", "split"))
    with pytest.raises(CorpusError, match=r"b\.tsv:1: no column sentence"):
        read_tsv(tmp_path / "b.tsv", ("path", "sentence"))


def test_utterance_id_starts_with_its_speaker():
    cid = "ab12" * 32
    assert speaker_id(cid) == "ab12ab12ab12"
    assert utterance_id(cid, "common_voice_nl_1.mp3") == "ab12ab12ab12-common_voice_nl_1"
    assert len(speaker_id("Not Hex!")) == 12 and speaker_id("Not Hex!") != speaker_id("Not Hex?")


def test_commonvoice_missing_says_what_to_do(tmp_path):
    with pytest.raises(CorpusError, match="COMMONVOICE is not set") as e:
        check_commonvoice("", ["nl"])
    assert "Common Voice Corpus 4" in str(e.value) and "commonvoice.mozilla.org" in str(e.value)
    (tmp_path / "nl" / "clips").mkdir(parents=True)
    (tmp_path / "nl" / "validated.tsv").write_text("client_id\tpath\tsentence\n")
    assert check_commonvoice(tmp_path, ["nl"]) == tmp_path
    with pytest.raises(CorpusError, match=f"{tmp_path / 'mn'}/validated.tsv"):
        check_commonvoice(tmp_path, ["nl", "mn"])


def test_splits_and_unlabeled_set(tmp_path):
    """train + train_covost -> train; every dev*/test* clip stays out of the unlabeled set."""
    cv, splits = tmp_path / "cv", ["train", "train_covost", "dev", "test", "dev_covost", "test_covost"]
    clips = [f"common_voice_nl_{i}.mp3" for i in range(len(splits) + 2)]
    _write_tsv(cv / "nl" / "validated.tsv", "client_id\tpath\tsentence\tup_votes",
               [f"{'c' * 128}\t{c}\tZin {i}.\t2" for i, c in enumerate(clips)])
    (cv / "nl" / "clips").mkdir()
    for c in clips[:-1]:  # the last clip has no audio on disk
        (cv / "nl" / "clips" / c).write_bytes(b"")
    _write_tsv(tmp_path / "covost_v2.nl_en.tsv", "path\tsentence\ttranslation\tclient_id\tsplit",
               [f"{c}\tx\ty\tz\t{s}" for c, s in zip(clips, splits)] + ["common_voice_nl_99.mp3\tx\ty\tz\ttest"])
    counts = prepare_covost2("nl", cv, tmp_path, tmp_path / "data")
    assert counts == {"train_nl": 2, "dev_nl": 1, "test_nl": 1, "train_unlabeled_nl": 3}
    clip_of = lambda d: {u.split("-", 1)[1] for u in read_table(tmp_path / "data" / d / "utt2spk")}  # noqa: E731
    assert clip_of("train_nl") == {"common_voice_nl_0", "common_voice_nl_1"}
    assert clip_of("train_unlabeled_nl") == {"common_voice_nl_0", "common_voice_nl_1", "common_voice_nl_6"}
    assert read_table(tmp_path / "data" / "test_nl" / "text") == {f"{'c' * 12}-common_voice_nl_3": "zin 3"}
    assert not (tmp_path / "data" / "train_unlabeled_nl" / "text").exists()


# ---------------------------------------------------------------------------------------
# The recipe end to end

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(root, server): fixture Common Voice in root/cv, CoVoST archives served from root/www."""
    root = tmp_path_factory.mktemp("covost2")
    build_commonvoice(root / "cv", EspeakSynthesizer())
    build_covost_archives(root / "www")
    with serve_directory(root / "www") as server:
        yield root, server


def make_recipe(where: Path, commonvoice: str, url: str) -> Path:
    """A copy of egs/covost2 whose shared parts link back into the repository, with its own db.sh."""
    recipe = where / "covost2"
    recipe.mkdir(parents=True)
    src = REPO / "egs" / "covost2"
    for name in ("asr.sh", "path.sh", "cmd.sh", "utils", "local"):
        os.symlink(os.path.realpath(src / name), recipe / name)
    shutil.copytree(src / "conf", recipe / "conf")
    shutil.copy(src / "run.sh", recipe / "run.sh")
    (recipe / "conf" / "tiny.yaml").write_text(TINY_BLJUST)
    db, n = re.subn(r"^COMMONVOICE=.*$", f"COMMONVOICE='{commonvoice}'", (src / "db.sh").read_text(), flags=re.M)
    db, m = re.subn(r"^COVOST2_TSV_URL=.*$", f"COVOST2_TSV_URL={url}", db, flags=re.M)
    assert n == m == 1, "db.sh no longer sets COMMONVOICE and COVOST2_TSV_URL on lines of their own"
    (recipe / "db.sh").write_text(db)
    return recipe


def run(recipe: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LC_ALL"}
    cmd = ["./run.sh", "--langs", " ".join(LANGS), "--nj", "1", "--train_config", "conf/tiny.yaml", *args]
    proc = subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"run.sh {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def recipe(corpus):
    root, server = corpus
    recipe = make_recipe(root / "egs", str(root / "cv"), server.url)
    run(recipe, "--stage", "0")
    return recipe


def test_end_to_end(recipe, corpus):
    _, server = corpus
    # Stage 0 fetched each language's archive once, from the db.sh location.
    assert sorted(path for path, _ in server.requests) == [f"/covost_v2.{lang}_en.tsv.tar.gz" for lang in sorted(LANGS)]
    for lang in LANGS:
        data = recipe / "data"
        for d in (f"train_{lang}", f"dev_{lang}", f"test_{lang}"):
            validate_data_dir(data / d)
            validate_data_dir(recipe / "dump" / "fbank" / d, require_feats=True)
        validate_data_dir(data / f"train_unlabeled_{lang}", require_text=False)
        wav = read_table(data / f"train_{lang}" / "wav.scp")
        assert all(w.endswith(".mp3") and Path(w).is_file() for w in wav.values())

        def clips(d):
            return {utt.split("-", 1)[1] for utt in read_table(data / d / "utt2spk")}
        # No evaluation audio in the unlabeled set; the clip CoVoST does not use is in it.
        held_out = clips_of(lang, ("dev", "test"))
        assert held_out == clips(f"dev_{lang}") | clips(f"test_{lang}")
        unlabeled = clips(f"train_unlabeled_{lang}")
        assert not unlabeled & held_out
        assert clip_name(lang, len(SENTENCES[lang]) - 1)[:-4] in unlabeled
        # train_covost counts as train; the punctuation-only transcript was dropped.
        assert clips(f"train_{lang}") == clips_of(lang, ("train", "train_covost")) - {clip_name(lang, 3)[:-4]}
        # Trained, decoded and scored per language.
        exp = recipe / "exp" / lang / f"asr_tiny_train_{lang}_fbank_char"
        scores = json.loads((exp / f"decode_test_{lang}_decode_greedy" / "scores.json").read_text())
        assert scores["num_utts"] == 2 and scores["wer"]["ref_len"] > 0 and scores["cer"]["ref_len"] > 0
        assert f"decode_test_{lang}_decode_greedy | 2 |" in (exp / "RESULTS.md").read_text()
    text = {lang: "\n".join(read_table(recipe / "data" / f"train_{lang}" / "text").values()) for lang in LANGS}
    assert "kom maar binnen zei hij" in text["nl"] and "één café en twee cafés" in text["nl"]
    assert "zo'n mooie dag" in text["nl"]
    assert "مرحبا كيف حالك" in text["ar"] and "الكتاب على الطاولة" in text["ar"]
    assert not re.search(r"[\"“”„.,?!،؛؟\u064b-\u0652]", text["nl"] + text["ar"])
    # Each language has its own token list.
    tokens = {lang: (recipe / "data" / "token_list" / lang / "char" / "tokens.txt").read_text() for lang in LANGS}
    assert "é " in tokens["nl"] and "ب " not in tokens["nl"] and "ب " in tokens["ar"] and "k " not in tokens["ar"]


def test_second_download_sends_no_request(recipe, corpus):
    _, server = corpus
    before = len(server.requests)
    run(recipe, "--stage", "0", "--stop_stage", "0")
    assert len(server.requests) == before


def test_multilingual_shares_one_token_list(recipe):
    run(recipe, "--multilingual", "true", "--stage", "4", "--stop_stage", "4")
    tokens = (recipe / "data" / "token_list" / "_".join(LANGS) / "char" / "tokens.txt").read_text()
    assert "é " in tokens and "ب " in tokens
    validate_data_dir(recipe / "data" / f"train_unlabeled_{'_'.join(LANGS)}", require_text=False)


def test_commonvoice_unset_or_incomplete_stops_with_instructions(corpus, recipe, tmp_path):
    root, server = corpus
    before = len(server.requests)
    proc = run(make_recipe(tmp_path, "", server.url), "--stage", "0", check=False)
    assert proc.returncode != 0 and "COMMONVOICE is not set" in proc.stderr
    assert "Common Voice Corpus 4" in proc.stderr and "commonvoice.mozilla.org" in proc.stderr
    proc = run(recipe, "--langs", "nl mn", "--stage", "0", "--stop_stage", "0", check=False)
    assert proc.returncode != 0 and f"{root / 'cv' / 'mn'}/validated.tsv" in proc.stderr
    assert len(server.requests) == before  # nothing was downloaded before the check


def test_bljust_wav2vec2_from_an_imported_checkpoint(recipe):
    """The recipe from stage 0 with train_bljust_wav2vec2.yaml: waveforms dumped (feats_type raw),
    the config's init: file made from a fairseq checkpoint this test writes, at tiny sizes."""
    import torch

    from bljust.bin.import_pretrained import main as import_pretrained
    from test_wav2vec2 import TINY, fairseq_checkpoint, make_encoder

    (recipe / "pretrained").mkdir()
    torch.save(fairseq_checkpoint(make_encoder(**TINY)), recipe / "pretrained" / "fairseq_tiny.pt")
    assert import_pretrained(["--format", "fairseq", str(recipe / "pretrained" / "fairseq_tiny.pt"),
                              str(recipe / "pretrained" / "wav2vec2_base.pt")]) == 0  # the path the config names
    tiny = ("--encoder_conf.shape tiny --encoder_conf.mask_channel_length 4 --unsup_conf.num_negatives 4 "
            "--unsup_conf.final_dim 12 --unsup_conf.codebook_entries 8 --unsup_conf.code_dim 6 --max_epochs 1 "
            "--phases.explore.steps 1 --phases.joint.steps 2 --phases.finetune.steps 1 --batch.max_frames 2000")
    run(recipe, "--stage", "0", "--feats_type", "raw", "--train_config", "conf/train_bljust_wav2vec2.yaml",
        "--train_args", tiny, "--tag", "w2v")
    for lang in LANGS:
        validate_data_dir(recipe / "dump" / "raw" / f"train_{lang}", require_feats=True)
        exp = recipe / "exp" / lang / "asr_w2v"
        log = (exp / "train.log").read_text()
        assert "init pretrained/wav2vec2_base.pt: encoder:" in log and "quantizer" in log
        assert json.loads((exp / "budget.json").read_text())["joint_steps"] == 2
        scores = json.loads((exp / f"decode_test_{lang}_decode_greedy" / "scores.json").read_text())
        assert scores["num_utts"] == 2
