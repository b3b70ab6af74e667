"""BL-JUST and the baselines: the single-backward step, phases, penalty schedules, exact resume, bad configs."""
from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from bljust.config import ConfigError, parse_overrides, to_dict
from bljust.data.dataset import FeatureDataset, collate
from bljust.models import ENCODERS
from bljust.models.asr_model import AsrModel, ModelConfig
from bljust.text.tokenizer import Tokenizer
from bljust.train.config import load_train_config
from bljust.train import checkpoint
from bljust.train.logs import chunk_label
from bljust.train.strategies import STRATEGIES, Chunk, cut_long, penalty
from bljust.train.errors import NonFiniteError, TrainingError
from bljust.train.precision import Precision
from bljust.train.step import GradientStep
from bljust.train.trainer import Trainer, TrainData

TINY_MODEL = {"encoder_conf": {"cnn_layers": 2, "latent_dim": 24, "lstm_layers": 1, "lstm_units": 16, "dropout": 0.0},
              "unsup_conf": {"steps": 3, "num_negatives": 8, "ar_dim": 32}}


def config(**over):
    base = {**TINY_MODEL, "batch": {"max_frames": 800}, "diag_interval": 0}
    if "unsup" in over:  # another head: none of CPC's settings apply
        base["unsup_conf"] = {}
    for k, v in over.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return load_train_config(None, base)


def steps_csv(exp_dir, timed: bool = True):
    """train_steps.csv's rows; timed=False: without wall_s, which differs between two runs of the same steps."""
    with open(exp_dir / "train_steps.csv", newline="") as f:
        return [r if timed else {k: v for k, v in r.items() if k != "wall_s"} for r in csv.DictReader(f)]


# ---- acceptance 1: one backward pass == three separate gradients ------------------------------

@pytest.mark.parametrize("eta_grad_scale", ["gamma", "one"])
def test_single_backward_equals_separate_gradients(tiny_corpus, eta_grad_scale):
    torch.manual_seed(0)
    tok = Tokenizer(tiny_corpus["token_dir"])
    lab_set = FeatureDataset(tiny_corpus["train_dir"], tiny_corpus["cmvn"], tok)
    unl_set = FeatureDataset(tiny_corpus["unlabeled_dir"], tiny_corpus["cmvn"])
    # float64, so the comparison is exact up to rounding of the sum order
    model = AsrModel(80, tok.vocab_size, ModelConfig(**TINY_MODEL)).double().train()
    groups = model.parameter_groups()
    gamma = 0.37
    strategy = config(strategy="bljust", strategy_conf={"eta_grad_scale": eta_grad_scale}).build_strategy()
    joint, explore, finetune = Chunk("joint", 2, 1), Chunk("explore", 1, 1), Chunk("finetune", 0, 1)
    for trial in range(3):
        lab = collate(lab_set, lab_set.utt_ids[trial * 5 : trial * 5 + 5])
        unl = collate(unl_set, unl_set.utt_ids[trial * 4 : trial * 4 + 4])
        lab.feats, unl.feats = lab.feats.double(), unl.feats.double()
        model.zero_grad(set_to_none=True)
        strategy.loss(model, joint, lab, unl, gamma, torch.Generator().manual_seed(trial)).total.backward()
        single = {k: [p.grad.clone() for p in ps] for k, ps in groups.items()}

        f = strategy.loss(model, finetune, lab, None, 1.0, None).total
        g = strategy.loss(model, explore, None, unl, 1.0, torch.Generator().manual_seed(trial)).total
        df = dict(zip(["theta", "phi"], [torch.autograd.grad(f, groups[k], retain_graph=True, allow_unused=True) for k in ("theta", "phi")]))
        dg = dict(zip(["theta", "eta"], [torch.autograd.grad(g, groups[k], retain_graph=True, allow_unused=True) for k in ("theta", "eta")]))
        eta_scale = gamma if eta_grad_scale == "gamma" else 1.0
        expected = {
            # CPC's g does not reach the context network: its theta gradient there is None (zero).
            "theta": [a if b is None else a + gamma * b for a, b in zip(df["theta"], dg["theta"])],
            "phi": list(df["phi"]),
            "eta": [eta_scale * b for b in dg["eta"]],
        }
        for k in ("theta", "phi", "eta"):
            for got, want in zip(single[k], expected[k]):
                torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_phases_move_only_their_groups(tiny_corpus, tmp_path):
    # No weight decay, so a parameter moves only when its gradient does.
    cfg = config(strategy="bljust", max_epochs=2, optim={"weight_decay": 0.0},
                 phases={"explore": {"steps": 2}, "joint": {"steps": 3}, "finetune": {"steps": 2}})
    trainer = Trainer(cfg, TrainData(**tiny_corpus), tmp_path)
    snapshots = []
    flat = lambda name: torch.cat([p.detach().flatten() for p in trainer.groups[name]]).clone()  # noqa: E731
    before = {k: flat(k) for k in ("theta", "phi", "eta")}

    def record(t):
        nonlocal before
        after = {k: flat(k) for k in ("theta", "phi", "eta")}
        snapshots.append((t.plan[t.progress.chunk_index].phase, {k: not torch.equal(before[k], after[k]) for k in after}))
        before = after

    trainer.on_step = record
    trainer.fit()
    moved = {phase: Counter() for phase in ("explore", "joint", "finetune")}
    for phase, changed in snapshots:
        for k, v in changed.items():
            moved[phase][k] += v
    assert moved["explore"] == Counter(theta=4, eta=4, phi=0)  # phi never moves while exploring
    assert moved["finetune"] == Counter(theta=2, phi=2, eta=0)  # eta never moves in final fine-tuning
    assert moved["joint"]["theta"] == 6 and moved["joint"]["phi"] == 6
    # gamma_1 = 0: eta does not move in the first joint epoch (its gradient is gamma * grad g), then it does.
    assert moved["joint"]["eta"] == 3


def test_step_counts_and_epoch_ramp(tiny_corpus, tmp_path):
    cfg = config(strategy="bljust", max_epochs=3, strategy_conf={"gamma_max": 0.9},
                 phases={"explore": {"steps": 2}, "joint": {"steps": 3}, "finetune": {"steps": 4}})
    Trainer(cfg, TrainData(**tiny_corpus), tmp_path).fit()
    rows = steps_csv(tmp_path)
    counts = Counter((r["phase"], int(r["epoch"])) for r in rows)
    assert counts == {("explore", 1): 2, ("joint", 1): 3, ("explore", 2): 2, ("joint", 2): 3,
                      ("explore", 3): 2, ("joint", 3): 3, ("finetune", 0): 4}
    assert [r["phase"] for r in rows[:5]] == ["explore"] * 2 + ["joint"] * 3
    gammas = [float(r["gamma"]) for r in rows if r["phase"] == "joint"]
    assert gammas == pytest.approx([0.0] * 3 + [0.3] * 3 + [0.6] * 3)  # gamma_k = gamma_max (k - 1) / K


def test_step_ramp_and_constant_schedules(tiny_corpus, tmp_path):
    cfg = config(strategy="bljust", max_epochs=2,
                 strategy_conf={"gamma_schedule": "step_ramp", "gamma_init": 0.1, "gamma_max": 0.5, "ramp_steps": 4},
                 phases={"explore": {"steps": 1}, "joint": {"steps": 3}, "finetune": {"steps": 0}})
    Trainer(cfg, TrainData(**tiny_corpus), tmp_path).fit()
    gammas = [float(r["gamma"]) for r in steps_csv(tmp_path) if r["phase"] == "joint"]
    assert gammas == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.5])
    assert penalty("constant", 0.7, epoch=1, epochs=5, joint_steps_done=0) == 0.7
    assert penalty("epoch_ramp", 1.0, epoch=5, epochs=5, joint_steps_done=0) == 0.8


def test_plans_of_each_strategy():
    steps = {"train": 5, "pretrain": 4, "finetune": 3, "explore": 2, "joint": 6}

    def plan(strategy, epochs, steps, **over):
        return config(strategy=strategy, max_epochs=epochs, **over).build_strategy().plan(steps)

    assert [(c.phase, c.steps) for c in plan("supervised", 2, steps)] == [("train", 5)] * 2
    assert [c.phase for c in plan("pt_ft", 2, steps, strategy_conf={"pretrain_epochs": 3})] == ["pretrain"] * 3 + ["finetune"] * 2
    assert [c.phase for c in plan("just", 2, steps)] == ["joint"] * 2
    assert [c.phase for c in plan("bljust", 2, steps)] == ["explore", "joint", "explore", "joint", "finetune"]
    assert [c.phase for c in plan("bljust", 1, {**steps, "explore": 0, "finetune": 0})] == ["joint"]


def test_long_chunks_are_cut_into_parts():
    plan = [Chunk("explore", 1, 5), Chunk("finetune", 0, 2500)]
    cut = cut_long(plan, 1000)
    assert [(c.phase, c.epoch, c.steps, c.part, c.parts) for c in cut] == [
        ("explore", 1, 5, 1, 1), ("finetune", 0, 834, 1, 3), ("finetune", 0, 833, 2, 3), ("finetune", 0, 833, 3, 3)]
    assert cut_long(plan, 0) == plan
    assert chunk_label(cut[2], cut) == "finetune part 2/3" and chunk_label(cut[0], cut) == "explore 1/1"


@pytest.mark.parametrize("module", ["trainer", "setup", "step", "logs", "progress", "checkpoint", "config"])
def test_only_the_strategies_name_a_strategy(module):
    """The training core and the config are generic: strategies own their names, phases and settings."""
    import importlib

    source = open(importlib.import_module(f"bljust.train.{module}").__file__).read()
    source = source.replace('getLogger("bljust")', "")  # the package, which shares BL-JUST's name
    for name in STRATEGIES:
        assert f'"{name}"' not in source and f"'{name}'" not in source and f".{name}" not in source, name
        assert not re.search(rf"^\s+{name}\w*:", source, re.M), name  # a config field named after it
    for phase in {p for cls in STRATEGIES.values() for p in cls.phases} - {"train"}:  # "train" also names the data set
        assert f'"{phase}"' not in source, phase


@pytest.mark.parametrize("strategy", ["supervised", "pt_ft", "just"])
def test_baselines_train_their_groups(tiny_corpus, tmp_path, strategy):
    phases = {"supervised": {"train": {"steps": 3}}, "pt_ft": {"pretrain": {"steps": 2}, "finetune": {"steps": 2}},
              "just": {"joint": {"steps": 3}}}[strategy]
    cfg = config(strategy=strategy, max_epochs=2, phases=phases,
                 **({"strategy_conf": {"weight": 0.5}} if strategy == "just" else {}))
    trainer = Trainer(cfg, TrainData(**tiny_corpus), tmp_path)
    trainer.fit()
    rows = steps_csv(tmp_path)
    assert len(rows) == {"supervised": 6, "pt_ft": 8, "just": 6}[strategy]
    if strategy == "just":
        assert {r["lambda"] for r in rows} == {"0.5"} and all(r["f"] and r["g"] for r in rows)
    assert "gamma" not in rows[0]  # only BL-JUST's weight of g is a penalty
    if strategy == "pt_ft":
        assert [r["phase"] for r in rows] == ["pretrain"] * 4 + ["finetune"] * 4
    if strategy == "supervised":  # it reads no unlabeled speech: no unsupervised head, no g anywhere
        assert trainer.model.unsup is None and trainer.groups["eta"] == []
        assert all(r["g"] == "" for r in rows)
        log = (tmp_path / "train.log").read_text()
        assert "no unsupervised head" in log and "g reaches" not in log and " g " not in log.split("train 1/2 done")[1]
        with open(tmp_path / "train_log.csv", newline="") as f:
            assert {r["valid_g"] for r in csv.DictReader(f)} == {""}
        package = checkpoint.load(tmp_path / "model_best.pt")
        assert package["config"]["unsup"] == "none" and not any(k.startswith("unsup.") for k in package["model"])
    budget = trainer.budget()
    assert budget["steps"] == len(rows) and budget["labeled_hours"] > 0
    assert (budget["labeled_batches"], budget["unlabeled_batches"]) == {"supervised": (6, 0), "pt_ft": (4, 4),
                                                                         "just": (6, 6)}[strategy]


# ---- acceptance 2: interrupted mid-joint-phase + resumed == uninterrupted ------------------------

CONTRASTIVE = {"num_negatives": 4, "final_dim": 8, "codebook_entries": 8, "code_dim": 8, "mask_span": 2,
               "gumbel_decay": 0.9}


@pytest.mark.parametrize("unsup", ["cpc", "contrastive"])
def test_resume_mid_joint_phase_is_exact(tiny_corpus, tmp_path, unsup, caplog):
    cfg = config(strategy="bljust", max_epochs=2, checkpoint_interval=2, diag_interval=3,
                 encoder_conf={"dropout": 0.2}, phases={"explore": {"steps": 2}, "joint": {"steps": 5}, "finetune": {"steps": 2}},
                 **({"unsup": "contrastive", "unsup_conf": CONTRASTIVE} if unsup == "contrastive" else {}))
    full = Trainer(cfg, TrainData(**tiny_corpus), tmp_path / "full")
    full.fit()

    first = Trainer(cfg, TrainData(**tiny_corpus), tmp_path / "cut")

    def interrupt(t):
        if t.progress.steps == 12:  # epoch 2 (steps 8-14): joint phase, 3rd of its 5 steps; last checkpoint at step 10
            assert t.plan[t.progress.chunk_index].phase == "joint"
            raise KeyboardInterrupt

    first.on_step = interrupt
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    # A newest checkpoint cut short (a crash while another tool copied it, a full disk): skipped with a warning.
    ckpts = tmp_path / "cut" / "checkpoints"
    (ckpts / "step_11.pt").write_bytes((ckpts / "step_10.pt").read_bytes()[:5000])
    second = Trainer(cfg, TrainData(**tiny_corpus), tmp_path / "cut")
    with caplog.at_level(logging.WARNING):
        assert second.resume()
    assert "step_11.pt: unreadable" in caplog.text and "falling back to the previous checkpoint" in caplog.text
    (ckpts / "step_11.pt").unlink()
    p = second.progress
    assert (p.steps, second.plan[p.chunk_index].phase, p.step_in_chunk) == (10, "joint", 1)
    assert p.weight == pytest.approx(0.5)
    second.fit()
    for (name, a), b in zip(full.model.state_dict().items(), second.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    if unsup == "contrastive":  # the quantizer's temperature is part of the model state
        quantizer = second.model.unsup.quantizer
        assert quantizer.num_updates.item() == full.model.unsup.quantizer.num_updates.item() > 0
        assert quantizer.temperature == full.model.unsup.quantizer.temperature < CONTRASTIVE["gumbel_decay"] * 2.0
    assert steps_csv(tmp_path / "full", timed=False) == steps_csv(tmp_path / "cut", timed=False)
    assert all(float(r["wall_s"]) > 0 for r in steps_csv(tmp_path / "cut"))


class Payload:
    """Any class: unpickling one could run code."""


def test_checkpoints_load_without_unpickling(tmp_path):
    """Checkpoints hold tensors and plain data only; one carrying any other object is refused."""
    path = tmp_path / "ckpt.pt"
    checkpoint.save({"rng": checkpoint.rng_state(), "model": {"w": torch.ones(2)}}, path)
    assert checkpoint.load(path)["model"]["w"].tolist() == [1.0, 1.0]
    torch.save({"model": {"w": torch.ones(2)}, "payload": Payload()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="ckpt.pt: refused, it carries a pickled payload"):
        checkpoint.load(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="ckpt.pt: unreadable"):
        checkpoint.load(path)


# ---- acceptance 5: bad configs fail before training, naming the key -----------------------------

def test_bad_configs_are_named(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match="strategy_conf.gamma_max must be >= 0"):
        config(strategy="bljust", strategy_conf={"gamma_max": -1.0})
    with pytest.raises(ConfigError, match="phases.joint.steps must be > 0 for strategy 'bljust'"):
        config(strategy="bljust", phases={"joint": {"steps": 0}})
    with pytest.raises(ConfigError, match="phases.explore is not a phase of strategy 'pt_ft'"):
        config(strategy="pt_ft", phases={"explore": {"steps": 1}})
    with pytest.raises(ConfigError, match="phases.joint.lr must be > 0"):
        config(strategy="just", phases={"joint": {"lr": 0.0}})
    no_unlabeled = {**tiny_corpus, "unlabeled_dir": None}
    with pytest.raises(ConfigError, match="strategy 'bljust' needs unlabeled data"):
        Trainer(config(strategy="bljust"), TrainData(**no_unlabeled), tmp_path)


class _NoLatentEncoder(torch.nn.Module):
    def __init__(self, input_dim, config):
        super().__init__()
        self.output_dim = 8
        self.lin = torch.nn.Linear(input_dim, 8)


def test_encoder_without_latent_is_rejected(monkeypatch):
    from dataclasses import dataclass

    @dataclass
    class NoConf:
        pass

    monkeypatch.setitem(ENCODERS, "no_latent", (_NoLatentEncoder, NoConf))
    with pytest.raises(ConfigError, match="encoder 'no_latent' cannot be used with unsup 'cpc'.*latent_dim"):
        AsrModel(80, 10, ModelConfig("no_latent", {}))


def test_nonfinite_steps_are_skipped_and_counted(tiny_corpus, tmp_path, caplog):
    """NaN features on chosen steps: those updates are skipped, counted and logged with their
    utterances; every saved parameter is finite. Only NaN batches: training stops, saying why."""
    cfg = config(strategy="bljust", max_epochs=2, phases={"explore": {"steps": 2}, "joint": {"steps": 3}, "finetune": {"steps": 2}})
    trainer = Trainer(cfg, TrainData(**tiny_corpus), tmp_path / "exp")
    poisoned, calls = {2, 5}, {"n": 0}  # the 2nd and 5th labeled batches
    next_batch = trainer.labeled.next

    def next_poisoned():
        batch = next_batch()
        calls["n"] += 1
        if calls["n"] in poisoned:
            batch.feats[0, :3] = float("nan")
        return batch

    trainer.labeled.next = next_poisoned
    with caplog.at_level(logging.WARNING):
        trainer.fit()
    assert trainer.gradients.skipped_steps == 2 and json.loads((tmp_path / "exp" / "budget.json").read_text())["skipped_steps"] == 2
    assert caplog.text.count("non-finite loss or gradient") == 2 and "update skipped (2 so far), utterances: " in caplog.text
    for name in ("model_best.pt", "model_last.pt", *(f"checkpoints/{p.name}" for p in (tmp_path / "exp" / "checkpoints").iterdir())):
        state = checkpoint.load(tmp_path / "exp" / name)["model"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), name

    always = Trainer(config(max_nonfinite_in_a_row=3), TrainData(**tiny_corpus), tmp_path / "nan")
    next_always = always.labeled.next
    always.labeled.next = lambda: _nan(next_always())
    with pytest.raises(NonFiniteError, match=r"3 steps in a row had a non-finite loss or gradient \(the last at step 3;"):
        always.fit()


def _nan(batch):
    batch.feats[:] = float("nan")
    return batch


def test_mixed_precision_keeps_losses_in_float32(tiny_corpus, tmp_path, caplog):
    """bfloat16 / float16 autocast (on the CPU here): f and g come out in float32; float16's loss
    scale halves on each overflow without counting towards max_nonfinite_in_a_row, and is
    saved in the checkpoint."""
    tok = Tokenizer(tiny_corpus["token_dir"])
    lab = collate(FeatureDataset(tiny_corpus["train_dir"], tiny_corpus["cmvn"], tok),
                  FeatureDataset(tiny_corpus["train_dir"]).utt_ids[:4])
    model = AsrModel(80, tok.vocab_size, ModelConfig(**TINY_MODEL)).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        f = model.supervised_loss(lab.feats, lab.lengths, lab.targets, lab.target_lengths)
        g = model.unsupervised_loss(lab.feats, lab.lengths, torch.Generator().manual_seed(0)).loss
    assert f.dtype == g.dtype == torch.float32

    cfg = config(strategy="bljust", precision="float16", max_nonfinite_in_a_row=1, max_epochs=1,
                 phases={"explore": {"steps": 3}, "joint": {"steps": 6}, "finetune": {"steps": 3}})
    trainer = Trainer(cfg, TrainData(**tiny_corpus), tmp_path / "exp")
    with caplog.at_level(logging.INFO):
        trainer.fit()  # a NonFiniteError here would mean an overflow counted as a bad step
    overflows = caplog.text.count("float16 gradient overflow")
    assert overflows >= 1 and trainer.gradients.skipped_steps == overflows
    saved = checkpoint.load(checkpoint.step_checkpoints(tmp_path / "exp" / "checkpoints")[-1][1])
    assert saved["loss_scaler"]["scale"] == 2.0 ** 16 * 0.5 ** overflows
    with pytest.raises(ConfigError, match="precision must be one of float32, bfloat16, float16, got 'half'"):
        Trainer(config(precision="half"), TrainData(**tiny_corpus), tmp_path / "bad")


def test_out_of_memory_retries_the_batch_in_halves(tiny_corpus, tmp_path, caplog):
    trainer = Trainer(config(max_epochs=1, batch={"max_frames": 600}, phases={"train": {"steps": 6}}),
                      TrainData(**tiny_corpus), tmp_path / "exp")
    loss, seen = trainer.strategy.loss, []

    def short_of_memory(model, chunk, labeled, *rest):  # a "GPU" that holds at most 5 utterances
        seen.append(len(labeled.utt_ids))
        if len(labeled.utt_ids) > 5:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return loss(model, chunk, labeled, *rest)

    trainer.strategy.loss = short_of_memory
    with caplog.at_level(logging.WARNING):
        trainer.fit()
    retried = [n for n in seen if n > 5]
    assert retried and caplog.text.count("retrying it in two halves") == len(retried)
    assert "out of memory on the batch (labeled (" in caplog.text
    assert trainer.gradients.skipped_steps == 0 and all(r["f"] != "" for r in steps_csv(tmp_path / "exp"))

    def no_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    trainer = Trainer(config(max_epochs=1, phases={"train": {"steps": 2}}), TrainData(**tiny_corpus), tmp_path / "none")
    trainer.strategy.loss = no_memory
    with pytest.raises(TrainingError, match=r"step 1: out of memory even on half of the batch \(labeled \(\d+, \d+, 80\)\); "
                                            "lower batch.max_frames"):
        trainer.fit()


def test_a_step_in_halves_equals_the_step_whole(tiny_corpus):
    """After running out of memory, the halves' gradients add up to the whole batch's: each half is
    weighted by its share of the utterances (3 and 2 of 5), so parameters and logged f agree."""
    tok = Tokenizer(tiny_corpus["token_dir"])
    lab_set = FeatureDataset(tiny_corpus["train_dir"], tiny_corpus["cmvn"], tok)
    lab = collate(lab_set, lab_set.utt_ids[:5])
    lab.feats = lab.feats.double()
    cfg = config(strategy="supervised")
    results = []
    for oom_above in (None, 4):  # whole; then a "GPU" that holds at most 4 utterances
        torch.manual_seed(0)
        # eval mode: batch norm would otherwise normalise each half by its own statistics
        model = AsrModel(80, tok.vocab_size, ModelConfig(**TINY_MODEL)).double().eval()
        strategy_obj = cfg.build_strategy()
        loss = strategy_obj.loss

        def short_of_memory(model, chunk, labeled, *rest):
            if oom_above and len(labeled.utt_ids) > oom_above:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return loss(model, chunk, labeled, *rest)

        strategy_obj.loss = short_of_memory
        step = GradientStep(model, strategy_obj, Precision("float32", torch.device("cpu")),
                            torch.Generator().manual_seed(1), distributed_run=False, max_nonfinite_in_a_row=1)
        result = step.run(1, Chunk("train", 1, 1), lab, None, 1.0, 1.0)
        assert result.finite
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        results.append((result.values, {k: v.detach().clone() for k, v in model.state_dict().items()}))
    (whole, whole_params), (halves, halves_params) = results
    torch.testing.assert_close(halves["f"], whole["f"], rtol=1e-12, atol=0)
    for name, value in whole_params.items():
        torch.testing.assert_close(halves_params[name], value, rtol=1e-10, atol=1e-12, msg=name)


def test_tensorboard_scalars_beside_the_csv_logs(tiny_corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(strategy="bljust", max_epochs=2, diag_interval=2,
                 phases={"explore": {"steps": 2}, "joint": {"steps": 3}, "finetune": {"steps": 2}})
    Trainer(cfg, TrainData(**tiny_corpus), tmp_path / "exp").fit()
    events = EventAccumulator(str(tmp_path / "exp" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/f", "train/g", "train/gamma", "train/lr_theta", "train/lr_eta", "train/cos_fg",
            "chunk/valid_f", "chunk/valid_cer", "chunk/train_g"} <= tags
    csv_f = [float(r["f"]) for r in steps_csv(tmp_path / "exp") if r["f"]]
    assert [round(e.value, 5) for e in events.Scalars("train/f")] == pytest.approx(csv_f)
    assert [e.step for e in events.Scalars("chunk/valid_cer")] == [2, 5, 7, 10, 12]


CONTROLS = sorted(str(p.relative_to(Path(__file__).resolve().parents[1]))
                  for p in Path(__file__).resolve().parents[1].glob("egs/*/conf/train_*_control.yaml"))


def test_every_recipe_ships_its_controls():
    assert {c.split("/")[1] for c in CONTROLS} == {"mini", "librispeech", "tedlium2", "covost2"}


@pytest.mark.parametrize("control_path", CONTROLS)
def test_each_control_is_its_strategy_without_unlabeled_speech(control_path):
    """egs/<recipe>/conf/train_<s>_control.yaml: the same labeled steps, phases, schedules and
    validation points that choose the best model as train_<s>.yaml, and no unlabeled batch."""
    root = Path(__file__).resolve().parents[1]
    system, control = (load_train_config(str(root / path)) for path in
                       (control_path.replace("_control.yaml", ".yaml"), control_path))
    steps = {"train": 5, "pretrain": 4, "finetune": 3, "explore": 2, "joint": 6}
    plans = []
    for cfg in (system, control):
        strategy = cfg.build_strategy()
        chunks = strategy.plan({p: steps[p] if c.steps is None or c.steps > 0 else 0 for p, c in cfg.phases.items()})
        plans.append([(c, strategy.draws(c, strategy.weight(c))) for c in chunks])
    labeled = [[c for c, (lab, _) in plan if lab] for plan in plans]
    assert labeled[0] == labeled[1] and labeled[0]
    assert any(unl for _, (_, unl) in plans[0]) and not any(unl for _, (_, unl) in plans[1])
    differing = {k for k in set(to_dict(system)) | set(to_dict(control)) if to_dict(system)[k] != to_dict(control)[k]}
    assert differing <= {"strategy_conf", "phases"}, differing
    for phase, pc in system.phases.items():  # only the unlabeled phases' steps may differ
        if cfg.build_strategy().phases[phase].labeled:
            assert control.phases[phase] == pc, phase


def test_semisup_benchmark_systems_draw_equal_budgets_on_matched_schedules():
    """egs/mini/semisup: 600 labeled batches for every system and 600 unlabeled ones for each that
    uses unlabeled speech; PT+FT's and JUST's labeled schedule is supervised's, and BL-JUST's is
    its control's."""
    conf = Path(__file__).resolve().parents[1] / "egs" / "mini" / "semisup" / "conf"
    cfgs = {p.stem.removeprefix("train_"): load_train_config(str(p)) for p in conf.glob("train_*.yaml")}
    assert len(cfgs) == 8

    def batches(cfg):
        strategy = cfg.build_strategy()
        draws = [strategy.draws(c, strategy.weight(c)) for c in strategy.plan({p: c.steps for p, c in cfg.phases.items()})
                 for _ in range(c.steps)]
        return sum(lab for lab, _ in draws), sum(unl for _, unl in draws)

    for name, cfg in cfgs.items():
        assert batches(cfg) == ((600, 0) if name in ("supervised", "bljust_control") else (600, 600)), name
    for name in ("pt_ft_cpc", "pt_ft_contrastive", "just_cpc", "just_contrastive"):
        labeled = cfgs[name].phases["finetune" if name.startswith("pt_ft") else "joint"]
        assert labeled == cfgs["supervised"].phases["train"] and cfgs[name].max_epochs == cfgs["supervised"].max_epochs
    for name in ("bljust_cpc", "bljust_contrastive"):
        for phase in ("joint", "finetune"):
            assert cfgs[name].phases[phase] == cfgs["bljust_control"].phases[phase]

    # --ablations: each override (read from run.sh) changes BL-JUST (CPC) in the one way it names
    run_sh = (conf.parent / "run.sh").read_text()
    ablations = dict(re.findall(r'^\s+\[(\w+)\]="([^"]+)"$', run_sh, flags=re.M))
    assert sorted(ablations) == ["constant_gamma", "no_explore", "no_finetune", "sgd"]
    base = load_train_config(str(conf / "train_bljust_cpc.yaml"))
    for name, args in ablations.items():
        cfg = load_train_config(str(conf / "train_bljust_cpc.yaml"), parse_overrides(args.split()))
        changed = {key for key in ("phases", "strategy_conf", "optim") if getattr(cfg, key) != getattr(base, key)}
        labeled, unlabeled = batches(cfg)
        if name == "no_explore":
            assert cfg.phases["explore"].steps == 0 and changed == {"phases"} and (labeled, unlabeled) == (600, 450)
        elif name == "no_finetune":
            assert cfg.phases["finetune"].steps == 0 and changed == {"phases"} and (labeled, unlabeled) == (500, 600)
        elif name == "constant_gamma":
            assert cfg.strategy_conf["gamma_schedule"] == "constant" and changed == {"strategy_conf"}
            assert (labeled, unlabeled) == (600, 650)  # epoch 1 draws unlabeled batches too (gamma > 0)
        else:
            assert cfg.optim.type == "sgd" and changed == {"phases", "optim"} and (labeled, unlabeled) == (600, 600)
