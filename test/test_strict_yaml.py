"""Strict YAML: a key given twice is an error; anchors, aliases and merge keys still work."""
from pathlib import Path

import pytest
import yaml

from bljust.config import ConfigError, load_yaml, parse_overrides, yaml_load
from bljust.train.config import load_train_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="x.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_duplicate_top_level_key_names_file_key_and_both_lines(tmp_path):
    p = write(tmp_path, "max_epochs: 3\nseed: 1\nmax_epochs: 5\n")
    with pytest.raises(ConfigError) as e:
        load_yaml(p)
    assert str(e.value) == f"{p}: duplicate key 'max_epochs' (lines 1 and 3)"


def test_duplicate_nested_key_is_dotted(tmp_path):
    text = ("strategy: bljust\n"
            "phases:\n"
            "  explore:\n"
            "    lr: 1.0e-3\n"
            "  joint:\n"
            "    steps: 10\n"
            "    lr: 1.0e-3\n"
            "    warmup_steps: 0\n"
            "  finetune:\n"
            "    steps: 5\n"
            "  joint2: {lr: 1}\n"
            "  joint: {}\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: duplicate key 'phases\.joint' \(lines 5 and 12\)$"):
        load_yaml(write(tmp_path, text))
    text = "phases:\n  joint:\n    lr: 1.0e-3\n    steps: 10\n\n    lr: 5.0e-4\n"
    with pytest.raises(ConfigError) as e:
        load_train_config(write(tmp_path, text, "train.yaml"))
    assert str(e.value).endswith("train.yaml: duplicate key 'phases.joint.lr' (lines 3 and 6)")
    assert "\n" not in str(e.value)
    # in a flow mapping, and in a mapping inside a list
    with pytest.raises(ConfigError, match=r"duplicate key 'batch\.max_frames' \(lines 1 and 1\)"):
        load_yaml(write(tmp_path, "batch: {max_frames: 1, max_frames: 2}\n"))
    with pytest.raises(ConfigError, match=r"duplicate key 'items\[1\]\.a' \(lines 3 and 4\)"):
        load_yaml(write(tmp_path, "items:\n  - {a: 1}\n  - a: 1\n    a: 2\n"))


def test_keys_that_differ_after_construction_are_not_duplicates(tmp_path):
    # 1 (an int) and "1" (a string) are two keys, as in yaml.safe_load; 1 and 0x1 are one
    assert load_yaml(write(tmp_path, "m:\n  1: a\n  '1': b\n")) == {"m": {1: "a", "1": "b"}}
    with pytest.raises(ConfigError, match=r"duplicate key 'm\.1' \(lines 2 and 3\)"):
        load_yaml(write(tmp_path, "m:\n  1: a\n  0x1: b\n"))


def test_anchors_and_aliases_load(tmp_path):
    text = ("common: &common\n"
            "  lr: 2.0e-4\n"
            "  steps: 7\n"
            "phases:\n"
            "  explore: *common\n"
            "  joint: *common\n"
            "names: &names [a, b]\n"
            "more: *names\n")
    data = load_yaml(write(tmp_path, text))
    assert data["phases"] == {"explore": {"lr": 2.0e-4, "steps": 7}, "joint": {"lr": 2.0e-4, "steps": 7}}
    assert data["more"] == ["a", "b"]
    assert data == yaml.safe_load(text)


def test_merge_keys_and_explicit_override(tmp_path):
    text = ("base: &base\n"
            "  lr: 1.0e-3\n"
            "  steps: 10\n"
            "  warmup_steps: 5\n"
            "phases:\n"
            "  explore:\n"
            "    <<: *base\n"
            "  joint:\n"
            "    <<: *base\n"
            "    lr: 5.0e-4\n"       # overrides the merged lr: allowed
            "    steps: 20\n")
    data = load_yaml(write(tmp_path, text))
    assert data["phases"]["explore"] == {"lr": 1.0e-3, "steps": 10, "warmup_steps": 5}
    assert data["phases"]["joint"] == {"lr": 5.0e-4, "steps": 20, "warmup_steps": 5}
    assert data == yaml.safe_load(text)
    # ... but a key written twice next to a merge is still a duplicate
    with pytest.raises(ConfigError, match=r"duplicate key 'phases\.joint\.lr' \(lines 4 and 6\)"):
        load_yaml(write(tmp_path, "base: &base {lr: 1}\nphases:\n  joint:\n    lr: 2\n    <<: *base\n    lr: 3\n"))


def test_merge_of_merges_and_merge_lists(tmp_path):
    # b merges g and overrides lr; the root and c merge b (SafeLoader rewrites b's node when the
    # root merges it first; its merged and its own lr must still not count as a duplicate)
    text = ("g: &g {lr: 1, a: 0}\n"
            "b: &b\n"
            "  <<: *g\n"
            "  lr: 2\n"
            "c:\n"
            "  <<: *b\n"
            "  lr: 3\n"
            "<<: *b\n")
    assert yaml_load(text) == yaml.safe_load(text) == {
        "lr": 2, "a": 0, "g": {"lr": 1, "a": 0}, "b": {"lr": 2, "a": 0}, "c": {"lr": 3, "a": 0}}
    # a list of merged mappings may share keys (which one wins is SafeLoader's business)
    text = "x: &x {lr: 1, a: 1}\ny: &y {lr: 2, b: 2}\nz:\n  <<: [*x, *y]\n  c: 3\n"
    assert yaml_load(text) == yaml.safe_load(text)
    assert yaml_load(text)["z"].keys() == {"lr", "a", "b", "c"}
    # a duplicate inside an anchored mapping is found where it is written
    with pytest.raises(yaml.YAMLError, match=r"duplicate key 'base\.lr' \(lines 2 and 3\)"):
        yaml_load("base: &base\n  lr: 1\n  lr: 2\nuse: {<<: *base}\n")


def test_duplicate_in_an_override_value():
    assert parse_overrides(["--batch", "{max_frames: 100}"]) == {"batch": {"max_frames": 100}}
    with pytest.raises(ConfigError, match=r"override '--batch': duplicate key 'max_frames' \(lines 1 and 1\)"):
        parse_overrides(["--batch", "{max_frames: 100, max_frames: 200}"])


def test_invalid_yaml_and_non_mapping_are_still_reported(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(write(tmp_path, "- 1\n"))
    assert load_yaml(write(tmp_path, "")) == {}


SHIPPED = sorted(REPO.glob("egs/*/conf/*.yaml"))


def test_every_shipped_config_loads_as_before():
    assert len(SHIPPED) > 10
    for path in SHIPPED:
        assert load_yaml(path) == (yaml.safe_load(path.read_text()) or {}), path
