"""Expansion is pure: spec -> trials with content-addressed ids."""

import copy
import dataclasses

import pytest

import prernn
from launch.expand import expand, trial_id
from launch.spec import load_spec
from prernn.config import BackboneConfig, DataConfig, ModelConfig, TrainConfig, TrialConfig
from prernn.settings import fields_of, section_in

from .conftest import ROOT, TOY


def table1(profile="mini", *sets):
    return load_spec(ROOT / "sweeps/table1.yaml", profile, list(sets))


REFERENCES = ("constant", "probe", "per-frame")


def test_table1_has_21_trials_with_matched_sizes_from_the_matcher():
    for profile, sizes, backbone in (("mini", [8, 16, 32, 64, 128], "mini_vgg"), ("paper", [256, 512, 1024, 2048, 4096], "vgg16")):
        spec = table1(profile)
        trials = expand(spec)
        for seed in spec.seeds:  # the paper's 21 networks and our 3 reference rows, for every seed
            kinds = [t.config.model.model for t in trials if t.config.seed == seed]
            assert len(kinds) == 24 and sorted(k for k in kinds if k in REFERENCES) == sorted(REFERENCES)
        assert len(trials) == 24 * len(spec.seeds)
        trad = [t.config.model for t in trials if t.config.model.model == "traditional"]
        assert sorted({m.hidden_dim for m in trad if not m.matched}) == sizes
        for m in trad:
            if m.matched:
                assert m.hidden_dim == prernn.match_hidden_dim(backbone, cell=m.cell, num_layers=2, num_outputs=136,
                                                                count=m.match_count)
        pre = [t.config.model for t in trials if t.config.model.model == "prernn" and t.config.seed == spec.seeds[0]]
        assert [m.cell for m in pre] == ["vrnn", "lstm", "gru"] and all(m.layers == ["fc6", "fc7"] for m in pre)


def test_ids_are_hashes_of_the_resolved_config():
    trials = expand(table1())
    assert len({t.id for t in trials}) == len(trials) == 72  # 24 trials x 3 seeds
    assert all(t.id == trial_id(t.config) for t in trials)
    assert [t.id for t in expand(table1())] == [t.id for t in trials]  # deterministic
    changed = expand(table1("mini", "train.weight_decay=0.001"))
    assert not {t.id for t in changed} & {t.id for t in trials}  # any config change -> new ids


SECTIONS = {"data": DataConfig, "backbone": BackboneConfig, "train": TrainConfig, "model": ModelConfig}


def field_paths(section: type, prefix: tuple = ()) -> set[tuple]:
    """Every leaf of a config type, as paths: nested sections are recursed into."""
    out = set()
    for f, ann in fields_of(section):
        nested = section_in(ann)
        out |= field_paths(nested, prefix + (f.name,)) if nested else {prefix + (f.name,)}
    return out


def leaf_paths(config: dict, prefix: tuple = ()) -> set[tuple]:
    out = set()
    for k, v in config.items():
        out |= leaf_paths(v, prefix + (k,)) if isinstance(v, dict) else {prefix + (k,)}
    return out


def other_value(value):
    """A different value of the same kind (no validation needed: trial_id hashes any config)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value + [value[0] if value else 1]
    return 1 if value is None else None


def changed(config: dict, path: tuple) -> dict:
    out = copy.deepcopy(config)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = other_value(node[path[-1]])
    return out


def test_a_trials_config_holds_every_field_of_every_section():
    """Expansion carries every field of every config type into the trial's config (the
    trial id hashes that config: a field left out could not change the id)."""
    expected = {("task",), ("seed",)} | {(s, *p) for s, t in SECTIONS.items() for p in field_paths(t)}
    assert expected == field_paths(TrialConfig)
    spec = table1()
    for t in expand(spec):
        assert leaf_paths(t.config.to_dict()) == expected
        assert t.config.data == spec.data and t.config.backbone == spec.backbone
        # the mini profile sets a learning rate per grid block; every other train field is the spec's
        assert t.config.train.lr in {0.4, 0.1, spec.train.lr}
        assert dataclasses.replace(t.config.train, lr=spec.train.lr) == spec.train


def how_not_what() -> set[tuple]:
    """Fields declared ``identifying=False`` (how a trial runs, e.g. data-loader workers)."""
    return {(s, f.name) for s, t in SECTIONS.items() for f, _ in fields_of(t)
            if not f.metadata["rule"].identifying}


def test_the_id_changes_when_any_resolved_field_changes():
    assert how_not_what() == {("data", "workers"), ("data", "cache_dir"), ("train", "compile"), ("train", "keep")}
    for t in expand(table1())[::7] + expand(table1("paper"))[::7]:  # traditional and PreRNN trials
        config = t.config.to_dict()
        paths = leaf_paths(config) - how_not_what()
        assert {p[0] for p in paths} == {"task", "seed", *SECTIONS}
        ids = {trial_id(changed(config, p)) for p in paths}
        assert len(ids) == len(paths) and t.id not in ids, "some field does not reach the id"
        for p in how_not_what():  # ... and none of those that only say how it runs does
            assert trial_id(changed(config, p)) == t.id


@pytest.mark.parametrize("override", ["data.size=40", "data.seed=5", "backbone.pretrain.epochs=9",
                                      "backbone.name=mini_c3d", "train.momentum=0.5", "seeds=[3, 4, 5]"])
def test_changing_a_section_through_the_spec_changes_every_id(override):
    base = expand(table1())
    other = expand(table1("mini", override))
    assert len(other) == len(base) and not {t.id for t in other} & {t.id for t in base}


def test_adding_grid_points_keeps_the_old_ids():
    base = {t.id for t in expand(table1())}
    more = expand(table1("mini", "grid.0.hidden_dim=[8, 16, 32, 64, 128, 256, matched]"))
    assert base < {t.id for t in more} and len(more) == len(base) + 3 * 3  # one more size x 3 cells x 3 seeds


def test_seeds_duplicates_and_layer_axes():
    spec = load_spec(ROOT / "sweeps/table2.yaml", None, ["seeds=[0, 1]"])
    trials = expand(spec)
    assert len(trials) == 30  # (3 cells x 4 layer settings + 3 reference rows) x 2 seeds
    layers = {(tuple(t.config.model.layers), t.config.model.extra_layers) for t in trials
              if t.config.model.model == "prernn"}
    assert layers == {(("fc6",), 0), (("fc7",), 0), (("fc6", "fc7"), 0), (("fc6", "fc7"), 1)}
    dup = load_spec(ROOT / "sweeps/table2.yaml", None, ["grid.1.extra_layers=0", "seeds=[0]"])
    assert len(expand(dup)) == 9 + 3  # block 1 now repeats block 0's fc6/7 trials: one trial each


def test_defaults_are_filled_so_equal_configs_share_an_id(write_spec):
    explicit = dict(TOY, grid=[{"model": "prernn", "cell": "gru", "variant": "gate", "input_init": "pretrained",
                                 "recurrent_init": "zeros", "extra_layers": 0, "layers": ["fc6", "fc7"]}])
    implicit = dict(TOY, grid=[{"model": "prernn", "cell": "gru"}])
    a = expand(load_spec(write_spec(explicit, filename="a.yaml")))
    b = expand(load_spec(write_spec(implicit, filename="b.yaml")))
    assert [t.id for t in a] == [t.id for t in b]


def test_train_and_data_axes(write_spec):
    spec = dict(TOY, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 4, "train.lr": [0.1, 0.01],
                            "data.fail_at_epoch": 1}])
    trials = expand(load_spec(write_spec(spec)))
    assert [t.config.train.lr for t in trials] == [0.1, 0.01]
    assert all(t.config.data.fail_at_epoch == 1 for t in trials)
    from launch.spec import SpecError

    bad = dict(TOY, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 4, "train.lr": [-1]}])
    with pytest.raises(SpecError, match=r"grid\.0 .*lr.*greater than 0"):
        expand(load_spec(write_spec(bad, filename="bad.yaml")))


def test_activation_shared_gate_and_conv_kernel_are_sweep_axes(write_spec):
    """The choices the paper leaves open reach the network a trial builds."""
    from prernn.trial import build_network

    spec = dict(TOY, grid=[{"model": "prernn", "cell": "lstm", "activation": ["relu", "tanh"], "shared_gate": ["g", "i"]},
                           {"model": "prernn", "cell": "gru", "variant": "sih"}])
    trials = expand(load_spec(write_spec(spec)))
    assert len(trials) == 5 and len({t.id for t in trials}) == 5
    for t in trials[:4]:
        m = t.config.model
        layer = build_network(t.config).recurrent["fc7"]
        assert (layer.activation, layer.shared_gate) == (m.activation, m.shared_gate)
    sih = trials[4].config.model
    assert sih.shared_gate is None and sih.activation == "relu" and sih.conv_kernel is None  # defaults resolved

    action = dict(TOY, task="action", data=dict(TOY["data"], source="synthetic_action", size=48, frames=2, flow_stack=1),
                  backbone={"name": "mini_resnet", "pretrained": "none"},
                  grid=[{"model": "prernn", "cell": "vrnn", "conv_kernel": [None, 3]}])
    default, three = expand(load_spec(write_spec(action, filename="a.yaml")))
    assert (default.config.model.conv_kernel, three.config.model.conv_kernel) == (1, 3)
    assert build_network(three.config).recurrent["layer4"].weight_hh.shape[-2:] == (3, 3)
    assert build_network(default.config).recurrent["layer4"].weight_hh.shape[-2:] == (1, 1)


@pytest.mark.bad_input
@pytest.mark.parametrize("block,expected", [
    ({"model": "prernn", "cell": "lstm", "activation": "swish"}, "unknown activation 'swish'; known: identity, relu"),
    ({"model": "prernn", "cell": "lstm", "shared_gate": "x"}, "unknown lstm gate 'x'; known: i, f, g, o"),
    ({"model": "prernn", "cell": "gru", "variant": "sih", "shared_gate": "n"}, "shared_gate: applies to the gate variant"),
    ({"model": "prernn", "cell": "lstm", "conv_kernel": 3}, "conv_kernel: applies to conv layers; mini_vgg's fc6, fc7 are linear"),
    ({"model": "prernn", "cell": "lstm", "conv_kernel": 2}, "conv_kernel: must be odd"),
    ({"model": "traditional", "cell": "gru", "hidden_dim": "matched", "match_count": "params"}, "'weights\\+biases' or 'weights'"),
    ({"model": "prernn", "cell": "gru", "match_count": "weights"}, "match_count do not apply to model 'prernn'"),
])
def test_bad_model_axes_name_the_field_and_the_allowed_values(write_spec, block, expected):
    from launch.spec import SpecError

    with pytest.raises(SpecError, match=expected):
        expand(load_spec(write_spec(dict(TOY, grid=[block]))))


def test_match_count_applies_to_matched_sizes_only(write_spec):
    spec = dict(TOY, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": [4, "matched"], "match_count": "weights"}])
    fixed, matched = expand(load_spec(write_spec(spec)))
    assert fixed.config.model.match_count is None and matched.config.model.match_count == "weights"
    assert matched.config.model.hidden_dim == prernn.match_hidden_dim("mini_vgg", cell="gru", num_outputs=2,
                                                                      count="weights")
