"""Spec loading: profiles, --set, and bad input - each a clear message, exit code 2, nothing written."""

import pytest

from launch.spec import SpecError, load_spec
from cli.main import main

from .conftest import ROOT, TOY


def run_main(args, capsys):
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        code = e.code
    return code, capsys.readouterr().err


def test_profiles_merge_and_set_override():
    spec = load_spec(ROOT / "sweeps/table1.yaml")
    assert spec.profile == "mini" and spec.backbone.name == "mini_vgg" and spec.grid[0]["hidden_dim"][0] == 8
    paper = load_spec(ROOT / "sweeps/table1.yaml", "paper", ["train.lr=0.001", "grid.1.cell=[gru]"])
    assert paper.backbone.name == "vgg16" and paper.train.lr == 0.001 and paper.grid[1]["cell"] == ["gru"]
    assert paper.grid[0]["hidden_dim"] == [256, 512, 1024, 2048, 4096, "matched"]
    assert paper.train.milestones == [10, 15, 20, 25]


def test_every_problem_reported_at_once(write_spec):
    bad = dict(TOY, train={"epochs": 0, "lr": -1, "momentum": 2}, data=dict(TOY["data"], frames="many"))
    with pytest.raises(SpecError) as e:
        load_spec(write_spec(bad))
    text = str(e.value)
    for where in ("train.epochs", "train.lr", "train.momentum", "data.frames"):
        assert where in text
    assert len(e.value.problems) == 4


def test_error_names_the_profile_key_it_came_from(write_spec):
    spec = dict(TOY, profiles={"mini": {"train": {"lr": "fast"}}})
    with pytest.raises(SpecError, match=r"profiles\.mini\.train\.lr: .*got 'fast'"):
        load_spec(write_spec(spec))
    with pytest.raises(SpecError, match=r"--set train\.epochs: .*greater than or equal to 1"):
        load_spec(write_spec(), overrides=["train.epochs=0"])


# (description, spec changes or raw text, extra CLI args, expected message fragment)
BAD = [
    ("unknown top-level key", {"nmae": "x"}, [], "unknown key 'nmae'.*did you mean 'name'"),
    ("unknown nested key", {"train": dict(TOY["train"], epoch=3)}, [], r"train\.epoch: unknown key 'epoch'.*did you mean 'epochs'"),
    ("wrong type", {"train": dict(TOY["train"], batch_size="eight")}, [], r"train\.batch_size: .*valid integer.*'eight'"),
    ("negative lr", {"train": dict(TOY["train"], lr=-0.1)}, [], r"train\.lr: .*greater than 0"),
    ("missing task", {"task": None}, [], r"task: .*got None"),
    ("unknown task", {"task": "faces"}, [], "unknown task 'faces'.*known: action, face, gesture, toy.*did you mean 'face'"),
    ("unknown backbone", {"backbone": {"name": "vgg19", "pretrained": "none"}}, [], "unknown backbone 'vgg19'.*did you mean 'vgg16'"),
    ("unknown cell", {"grid": [{"model": "traditional", "cell": "lstn", "hidden_dim": 4}]}, [], r"grid\.0 .*unknown cell 'lstn'.*known: gru, lstm, vrnn"),
    ("unknown model kind", {"grid": [{"model": "rnn", "cell": "gru", "hidden_dim": 4}]}, [], r"grid\.0.*model: Input should be 'prernn', 'traditional', 'per-frame', 'constant' or 'probe' \(got 'rnn'\)"),
    ("empty grid", {"grid": []}, [], r"grid: .*at least 1 item"),
    ("empty axis", {"grid": [{"model": "traditional", "cell": [], "hidden_dim": 4}]}, [], r"grid\.0\.cell: an axis needs at least one value"),
    ("unknown axis", {"grid": [{"model": "prernn", "cell": "gru", "hiden_dim": 4}]}, [], "unknown key 'hiden_dim'.*did you mean 'hidden_dim'"),
    ("sih for vrnn", {"grid": [{"model": "prernn", "cell": "vrnn", "variant": "sih"}]}, [], "variant 'sih' is not defined for cell 'vrnn'"),
    ("hidden_dim on prernn", {"grid": [{"model": "prernn", "cell": "gru", "hidden_dim": 64}]}, [], "hidden_dim do not apply to model 'prernn'"),
    ("traditional without size", {"grid": [{"model": "traditional", "cell": "gru"}]}, [], "needs hidden_dim"),
    ("bad hidden size", {"grid": [{"model": "traditional", "cell": "gru", "hidden_dim": [0, "big"]}]}, [], "hidden_dim"),
    ("unknown layer", {"grid": [{"model": "prernn", "cell": "gru", "layers": ["fc8"]}]}, [], "unknown mini_vgg layer 'fc8'; known: fc6, fc7"),
    ("unknown recurrent init", {"grid": [{"model": "prernn", "cell": "gru", "recurrent_init": "eye"}]}, [], "unknown recurrent init 'eye'"),
    ("bad input init", {"grid": [{"model": "prernn", "cell": "gru", "input_init": "imagenet"}]}, [], "'pretrained' or 'random'"),
    ("source does not fit task", {"data": dict(TOY["data"], source="synthetic_face")}, [], "does not provide task 'toy'; allowed: toy"),
    ("unknown data source", {"data": dict(TOY["data"], source="300w")}, [], "unknown data source '300w'"),
    ("unknown schedule", {"train": dict(TOY["train"], schedule="cosine")}, [], "unknown lr schedule 'cosine'.*known: constant, every, plateau, step"),
    ("bad sweep name", {"name": "my sweep/1"}, [], r"name: .*pattern"),
    ("seeds empty", {"seeds": []}, [], r"seeds: .*at least 1 item"),
    ("pretrain without cache", {"backbone": {"name": "mini_vgg", "pretrained": "none", "pretrain": {"epochs": 1}}}, [], r"backbone\.pretrain: applies only with pretrained: cache, not .none."),
    ("missing weights file", {"backbone": {"name": "mini_vgg", "pretrained": "/nonexistent/w.pt"}}, [], r"backbone\.pretrained: .*no such file /nonexistent/w\.pt"),
    ("missing data root", {"task": "face", "data": dict(TOY["data"], source="300vw", root="/nonexistent/data")}, [], "data.root: no such directory '/nonexistent/data'"),
    ("data root of a generated source", {}, ["--data-root", "/tmp"], "'toy' is generated from its seed; it takes no data.root"),
    ("every video of a generated source", {"data": dict(TOY["data"], train_videos=None)}, [], r"null \(every video\) needs a real dataset"),
    ("temporal lr of a one-stream task", {"train": dict(TOY["train"], temporal_lr=0.1)}, [], "apply to two-stream tasks"),
    ("not yaml", "name: [unclosed\n", [], "not valid YAML at line"),
    ("not a mapping", "- just\n- a list\n", [], "a spec is a YAML mapping"),
    ("unknown profile", {}, ["--profile", "paper"], "--profile: unknown profile 'paper'|unknown profile"),
    ("--set without =", {}, ["--set", "train.lr"], "expected key=value"),
    ("--set bad yaml", {}, ["--set", "train.lr=[1"], "not valid YAML"),
    ("--set bad value", {}, ["--set", "train.epochs=-3"], r"--set train\.epochs: .*greater than or equal to 1"),
    ("--set bad index", {}, ["--set", "grid.5.cell=gru"], "not an index of a list of 2"),
    ("--set into a value", {}, ["--set", "name.x=1"], "is a value, not a section"),
    ("unknown backend", {}, ["--backend", "kubernetes"], "unknown backend 'kubernetes'; known: local"),
    ("bad --workers", {}, ["--workers", "0"], "expected a positive integer"),
    ("unknown option", {}, ["--fast"], "unrecognized arguments: --fast"),
    ("--lost-after below three heartbeats", {}, ["--lost-after", "5"], "must be at least 30 seconds"),
    ("--max-failures not a number", {}, ["--max-failures", "many"], "invalid int value: 'many'"),
    ("a ray flag on local", {}, ["--asha"], "--asha is an option of the ray backend, not of local"),
    ("a slurm flag on ray", {}, ["--backend", "ray", "--partition", "gpu"],
     "--partition is an option of the slurm backend, not of ray"),
    ("a local flag on slurm", {}, ["--backend", "slurm", "--workers", "2"],
     "--workers is an option of the local backend, not of slurm"),
    ("a flag two backends take", {}, ["--backend", "slurm", "--max-failures", "1"],
     "--max-failures is an option of the local and ray backends, not of slurm"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("desc,change,args,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_exit_2_clear_message_nothing_written(desc, change, args, expected, write_spec, tmp_path, capsys):
    path = write_spec(change) if isinstance(change, str) else write_spec(None, **change)
    if desc == "unknown profile":
        path = write_spec(dict(TOY, profiles={"mini": {}}))
    results = tmp_path / "results"
    code, err = run_main([path, "--results-dir", results, *args], capsys)
    assert code == 2, err
    assert __import__("re").search(expected, err), err
    assert not results.exists()


@pytest.mark.bad_input
def test_unreadable_spec_path(tmp_path, capsys):
    code, err = run_main([tmp_path / "missing.yaml", "--results-dir", tmp_path / "r"], capsys)
    assert code == 2 and "cannot read the spec" in err and "missing.yaml" in err


@pytest.mark.bad_input
def test_all_problems_printed_one_per_line(write_spec, tmp_path, capsys):
    spec = dict(TOY, task="faces", train=dict(TOY["train"], lr=0))
    code, err = run_main([write_spec(spec), "--results-dir", tmp_path / "r"], capsys)
    assert code == 2 and err.count("error: ") == 2 and not (tmp_path / "r").exists()


def test_shipped_specs_validate_and_expand_in_every_profile():
    from launch.expand import expand
    from launch.spec import profiles_of, read_yaml

    found = {}
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        for profile in profiles_of(read_yaml(path)):
            spec = load_spec(path, profile)
            assert spec.profile == profile and expand(spec, path), f"{path.name} [{profile}] has no trials"
            found.setdefault(path.stem, []).append(profile)
    assert found == {name: ["mini", "paper"] for name in ("gesture", "table1", "table2", "table3")}
