"""Typed YAML configs: unknown keys, wrong types and overrides."""
import pytest

from bljust.config import ConfigError, parse_overrides
from bljust.train.config import load_train_config


def write(tmp_path, text):
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return p


def test_defaults_and_values(tmp_path):
    cfg = load_train_config(write(tmp_path, "max_epochs: 3\nphases:\n  train: {lr: 1e-3}\n"))
    assert cfg.max_epochs == 3 and cfg.phases["train"].lr == 1e-3 and cfg.batch.max_frames == 20000


def test_unknown_key_is_named_with_file(tmp_path):
    p = write(tmp_path, "phases:\n  train: {lrr: 0.1}\n")
    with pytest.raises(ConfigError, match=r"train.yaml: unknown key 'phases.train.lrr'"):
        load_train_config(p)
    with pytest.raises(ConfigError, match="unknown key 'epochs'"):
        load_train_config(write(tmp_path, "epochs: 3\n"))


def test_wrong_type_is_named(tmp_path):
    with pytest.raises(ConfigError, match="'max_epochs' must be int, got 'ten'"):
        load_train_config(write(tmp_path, "max_epochs: ten\n"))
    with pytest.raises(ConfigError, match="'specaug.enabled' must be bool"):
        load_train_config(write(tmp_path, "specaug:\n  enabled: 1\n"))
    with pytest.raises(ConfigError, match="phases.train.lr must be > 0"):
        load_train_config(write(tmp_path, "phases:\n  train: {lr: -1.0}\n"))
    for key, value in (("max_frames", 0), ("num_workers", -1), ("max_joint", -5)):
        with pytest.raises(ConfigError, match=rf"batch.{key} must be >= [01], got {value}"):
            load_train_config(write(tmp_path, f"batch: {{{key}: {value}}}\n"))


def test_overrides(tmp_path):
    over = parse_overrides(["--phases.train.lr", "5e-4", "--max_epochs=7", "--encoder_conf.lstm-layers", "4"])
    assert over["max_epochs"] == 7 and over["encoder_conf"] == {"lstm_layers": 4}
    cfg = load_train_config(write(tmp_path, "max_epochs: 3\nphases:\n  train: {warmup_steps: 10}\n"), over)
    assert cfg.max_epochs == 7 and cfg.phases["train"].lr == 5e-4 and cfg.phases["train"].warmup_steps == 10
    assert cfg.encoder_conf == {"lstm_layers": 4}
    with pytest.raises(ConfigError, match="unknown key 'optim.nope'"):
        load_train_config(None, parse_overrides(["--optim.nope", "1"]))
    with pytest.raises(ConfigError, match="has no value"):
        parse_overrides(["--max_epochs"])


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_train_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_config(write(tmp_path, "a: [1\n"))
