"""Which parameters each loss reaches: f -> theta, phi; g -> theta, eta; model_info on every shipped config."""
from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest
import torch

from bljust.bin import model_info
from bljust.models.asr_model import AsrModel, ModelConfig
from bljust.train.config import load_train_config

REPO = Path(__file__).resolve().parents[1]
ENCODERS = {
    "cnn_lstm": {"cnn_layers": 2, "cnn_channels": 4, "latent_dim": 16, "lstm_layers": 1, "lstm_units": 8, "dropout": 0.0},
    "conformer": {"d_model": 16, "num_heads": 2, "num_layers": 2, "ffn_dim": 32, "conv_kernel": 3,
                  "subsampling_channels": 4, "dropout": 0.0},
}
HEADS = {
    "cpc": {"steps": 2, "num_negatives": 4, "ar_dim": 8},
    "contrastive": {"num_negatives": 4, "final_dim": 8, "codebook_entries": 4, "code_dim": 8, "mask_span": 2},
    "contrastive_mlm": {"num_negatives": 4, "final_dim": 8, "codebook_entries": 4, "code_dim": 8, "mask_span": 2,
                        "mlm_layers": 1, "mlm_heads": 2, "mlm_ffn_dim": 16},
}


def reached(loss, params) -> list[bool]:
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [g is not None and bool(g.any()) for g in grads]


@pytest.mark.parametrize("unsup", list(HEADS))
@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_each_loss_reaches_exactly_its_groups(encoder, unsup):
    torch.manual_seed(0)
    model = AsrModel(80, 12, ModelConfig(encoder, ENCODERS[encoder], unsup=unsup, unsup_conf=HEADS[unsup])).train()
    batch = model_info.random_batch(80, 12)
    groups = model.parameter_groups()
    gen = torch.Generator().manual_seed(0)
    f = model.supervised_loss(batch.feats, batch.lengths, batch.targets, batch.target_lengths)
    g = model.unsupervised_loss(batch.feats, batch.lengths, gen).loss
    assert all(reached(f, groups["theta"])) and all(reached(f, groups["phi"])) and not any(reached(f, groups["eta"]))
    assert not any(reached(g, groups["phi"]))
    g_eta = reached(g, groups["eta"])
    assert all(g_eta), [n for (n, _), r in zip(model.unsup.named_parameters(), g_eta) if not r]
    g_theta = reached(g, groups["theta"])
    if unsup == "cpc":  # its own GRU reads the latent frames: the context network is out of reach
        assert any(g_theta) and not all(g_theta)
    else:
        assert all(g_theta)


SHIPPED = sorted(p for p in glob.glob(str(REPO / "egs/*/conf/train_*.yaml")) if "supervised" not in Path(p).name)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(Path(p).relative_to(REPO)))
def test_model_info_on_shipped_configs(path, capsys):
    assert model_info.main(["--config", path, "--vocab_size", "40"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert re.fullmatch(r"f reaches [\d.]+% of theta", lines[-2]) and re.fullmatch(r"g reaches [\d.]+% of theta", lines[-1])
    config = load_train_config(path)
    if not config.encoder_conf.get("freeze_feature_encoder"):
        assert lines[-2] == "f reaches 100.0% of theta"
    g_reach = float(lines[-1].split()[2].rstrip("%"))
    if config.unsup in ("contrastive", "contrastive_mlm"):
        assert g_reach >= 95.0, path
    real_recipe_default = Path(path).name in ("train_pt_ft.yaml", "train_bljust.yaml") and "/mini/" not in path
    if real_recipe_default:
        assert config.unsup == "contrastive", path
    for group in ("theta", "phi", "eta"):
        assert re.search(rf"^  {group}\s+[\d,]+ parameters", out, re.M)


def test_model_info_reports_bad_config(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder: transformer\n")
    assert model_info.main(["--config", str(bad)]) == 1
    assert "unknown encoder 'transformer'" in capsys.readouterr().err
