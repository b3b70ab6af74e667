"""Optimizer semantics: decay, gradient-less parameters, per-group clipping, SGD, shared state, gamma = 0."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bljust.config import ConfigError
from bljust.train.config import OptimConfig, PhaseConfig, load_train_config
from bljust.train.optim import GroupOptimizers
from bljust.train.trainer import Trainer, TrainData


def toy_groups():
    torch.manual_seed(0)
    return {"theta": [nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.randn(4))],
            "phi": [nn.Parameter(torch.randn(2, 3))], "eta": [nn.Parameter(torch.randn(5, 5))]}


def optimizers(groups, **optim):
    phases = {"explore": (PhaseConfig(lr=0.1), ("theta", "eta")), "joint": (PhaseConfig(lr=0.2), ("theta", "phi", "eta"))}
    return GroupOptimizers(groups, phases, OptimConfig(**optim))


def test_no_decay_of_1d_parameters_nor_of_parameters_without_gradient():
    groups = toy_groups()
    opt = optimizers(groups, type="sgd", weight_decay=0.5, grad_clip=0.0)
    before = {k: [p.detach().clone() for p in ps] for k, ps in groups.items()}
    matrix, bias = groups["theta"]
    matrix.grad = torch.zeros_like(matrix)  # in the graph, but no gradient this step
    bias.grad = torch.ones_like(bias)
    groups["eta"][0].grad = torch.ones(5, 5)
    opt.step("explore", 1.0)
    assert torch.equal(matrix, before["theta"][0])  # untouched: no decay without a gradient
    torch.testing.assert_close(bias.detach(), before["theta"][1] - 0.1)  # 1-d: no decay
    # 2-d with a gradient: decoupled decay lr * wd * p, plus the gradient step
    torch.testing.assert_close(groups["eta"][0].detach(), before["eta"][0] * (1 - 0.1 * 0.5) - 0.1)
    assert torch.equal(groups["phi"][0], before["phi"][0])  # not a group of the phase


def test_adamw_with_momentum_leaves_a_gradient_less_parameter_bit_identical():
    groups = toy_groups()
    opt = optimizers(groups)
    eta = groups["eta"][0]
    eta.grad = torch.ones(5, 5)
    opt.step("explore", 1.0)
    after_first = eta.detach().clone()
    eta.grad = torch.zeros(5, 5)  # momentum from step 1 would move it; a step without gradient must not
    opt.step("explore", 1.0)
    assert torch.equal(eta, after_first)


def test_clipping_is_per_group():
    groups = toy_groups()
    opt = optimizers(groups, type="sgd", weight_decay=0.0, grad_clip=1.0)
    phi_before = groups["phi"][0].detach().clone()
    groups["phi"][0].grad = torch.full((2, 3), 0.1)  # norm 0.245 < 1: kept as it is
    for p in groups["theta"] + groups["eta"]:
        p.grad = torch.full_like(p, 1e6)  # a spike in g
    lrs = opt.step("joint", 0.5)
    assert lrs == {"theta": 0.1, "phi": 0.1, "eta": 0.1}
    torch.testing.assert_close(groups["phi"][0].detach(), phi_before - 0.1 * 0.1)
    assert torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in groups["eta"]])) == pytest.approx(1.0, rel=1e-5)


def test_shared_state_keeps_one_optimizer_per_group():
    assert set(optimizers(toy_groups()).optimizers) == {"explore.theta", "explore.eta", "joint.theta", "joint.phi", "joint.eta"}
    assert set(optimizers(toy_groups(), share_state=True).optimizers) == {"theta", "phi", "eta"}


def test_bad_optim_config_is_named():
    with pytest.raises(ConfigError, match="optim.type must be one of adamw, sgd"):
        load_train_config(None, {"optim": {"type": "adam"}})
    with pytest.raises(ConfigError, match="optim.grad_clip must be >= 0"):
        load_train_config(None, {"optim": {"grad_clip": -1}})


def test_zero_gamma_skips_g_and_its_hours(tiny_corpus, tmp_path):
    cfg = load_train_config(None, {
        "encoder_conf": {"cnn_layers": 2, "latent_dim": 24, "lstm_layers": 1, "lstm_units": 16},
        "unsup_conf": {"steps": 2, "num_negatives": 8, "ar_dim": 16}, "strategy": "bljust", "max_epochs": 2,
        "batch": {"max_frames": 800}, "diag_interval": 0,
        "phases": {"explore": {"steps": 0}, "joint": {"steps": 2}, "finetune": {"steps": 0}}})
    trainer = Trainer(cfg, TrainData(**tiny_corpus), tmp_path)
    hours = []
    trainer.on_step = lambda t: hours.append(t.progress.unlabeled_hours)
    trainer.fit()
    assert hours[:2] == [0.0, 0.0] and hours[2] > 0  # epoch 1: gamma = 0, no unlabeled batch drawn
    rows = (tmp_path / "train_steps.csv").read_text().splitlines()
    assert [r.split(",")[4] for r in rows[1:]][:2] == ["", ""]  # no g computed


def test_a_phase_leaves_what_it_does_not_train_bit_identical(tiny_corpus, tmp_path):
    """PT+FT with CPC: pre-training (weight decay on) must not touch the BiLSTM, which g does not
    reach, nor the CTC head, which the phase does not train."""
    cfg = load_train_config(None, {
        "encoder_conf": {"cnn_layers": 2, "latent_dim": 24, "lstm_layers": 1, "lstm_units": 16},
        "unsup_conf": {"steps": 2, "num_negatives": 8, "ar_dim": 16}, "strategy": "pt_ft", "max_epochs": 1,
        "batch": {"max_frames": 800}, "diag_interval": 2, "optim": {"weight_decay": 0.1},
        "phases": {"pretrain": {"steps": 3}, "finetune": {"steps": 1}}})
    trainer = Trainer(cfg, TrainData(**tiny_corpus), tmp_path)
    model = trainer.model
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith(("encoder.lstm", "sup."))}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("encoder.proj")}
    seen = []

    def check(t):
        if t.progress.steps <= 3:  # pre-training
            for n, p in model.named_parameters():
                if n in frozen:
                    assert torch.equal(p, frozen[n]), n
            seen.append(t.progress.steps)

    trainer.on_step = check
    trainer.fit()
    assert seen == [1, 2, 3]
    assert all(not torch.equal(dict(model.named_parameters())[n], v) for n, v in trained.items())
