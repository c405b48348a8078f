"""Verdicts a reader can trust: a table is exactly its spec's trials, whatever else the
store holds; an axis the table has no place for is split, never averaged; the printed
line, the report's row and the notebook's row of a claim tell one story."""

import html
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from analysis import data, tables
from launch.expand import expand
from launch.spec import SpecError, load_spec

from .conftest import ROOT, sweep
from .stores import fake_store

TABLE1 = ROOT / "sweeps/table1.yaml"


def _planted(i, t):
    """A loss with seed noise shared by the arms of a seed: PreRNN better by a cell-dependent
    amount (decided for GRU, undecided for LSTM, reversed for VRNN at some sizes)."""
    m, seed = t.config.model, t.config.seed
    rng = np.random.default_rng([i, seed])
    base = 0.02 + 0.001 * seed + 0.0004 * rng.standard_normal()
    if m.model == "prernn":
        return base - {"gru": 0.004, "lstm": 0.0004, "vrnn": -0.001}[m.cell]
    return base if m.model == "traditional" else 0.035


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The mini run alone, and the same run plus trials of the paper profile, of another PreRNN
    lr and of another epoch count - all far off, so pooling them would move every number."""
    alone, pooled = tmp_path_factory.mktemp("alone"), tmp_path_factory.mktemp("pooled")
    fake_store(TABLE1, alone, value=_planted)
    shutil.rmtree(pooled)
    shutil.copytree(alone, pooled)
    far = lambda i, t: 0.5  # noqa: E731
    fake_store(TABLE1, pooled, seeds=(0,), value=far, profile="paper",
               only=lambda t: t.config.model.model == "prernn")
    fake_store(TABLE1, pooled, value=far, overrides=["grid.1.train.lr=0.2"],
               only=lambda t: t.config.model.model == "prernn")
    fake_store(TABLE1, pooled, seeds=(0, 1), value=far, overrides=["train.epochs=50"],
               only=lambda t: t.config.model.cell == "vrnn")
    return alone, pooled


LEFT_OUT = "left out"


def _before_left_out(text: str) -> str:
    """What a command printed before its left-out note (which comes last)."""
    return text.split(LEFT_OUT)[0].rstrip()


def test_a_store_with_foreign_trials_gives_the_mini_runs_tables_claims_status_and_report(stores, tmp_path):
    alone, pooled = stores
    spec = load_spec(TABLE1)
    a, b = data.load(alone, spec.task, expand(spec), "mini"), data.load(pooled, spec.task, expand(spec), "mini")
    pd.testing.assert_frame_equal(a.trials.sort_values("id").reset_index(drop=True),
                                  b.trials.sort_values("id").reset_index(drop=True), check_dtype=False)
    # what was left out, and why: 3 PreRNN of the paper profile, 9 of another lr, 7 VRNN x 2 seeds of 50 epochs
    assert a.left_out == {} and b.left_out == {"of profile paper": 3, "with another train.lr": 9,
                                               "with another train.epochs": 14}
    out = {}
    for name, store in (("alone", alone), ("pooled", pooled)):
        summary = sweep("summary", TABLE1, "--results-dir", store)
        status = sweep("status", TABLE1, "--results-dir", store)
        report = sweep("report", TABLE1, "--results-dir", store, "--output", tmp_path / f"{name}.html")
        assert summary.returncode == status.returncode == report.returncode == 0, summary.stderr + report.stderr
        text = (tmp_path / f"{name}.html").read_text()
        out[name] = (summary.stdout, status.stdout, text[text.index("<h2>Claims"):text.index("<h2>Figures")])
    (s_a, st_a, r_a), (s_b, st_b, r_b) = out["alone"], out["pooled"]
    assert LEFT_OUT not in s_a + st_a + r_a
    assert s_a.rstrip() == _before_left_out(s_b) and "reproduced" in s_a  # the summary, unchanged
    note = " ".join(s_b.split())
    assert "left out 26 trial(s) of the store that are not this spec's" in note
    assert "14 with another train.epochs, 9 with another train.lr, 3 of profile paper" in note
    rows = lambda text: text.rstrip().splitlines()[1:]  # noqa: E731 (the title names the directory)
    assert rows(st_a) == rows(_before_left_out(st_b)) and st_a.splitlines()[-1] == "72 completed"  # status, unchanged
    assert "left out 26" in " ".join(st_b.split())
    note_html = f"<p class=note>{html.escape(b.left_out_note())}</p>"
    assert note_html in r_b and r_a == r_b.replace(note_html + "\n", "")  # the report's claims and table, unchanged


def test_the_paper_profile_over_a_mini_store_tests_nothing_and_says_so(stores, tmp_path):
    alone, _ = stores
    res = sweep("summary", TABLE1, "--profile", "paper", "--results-dir", alone)
    text = " ".join(res.stdout.split())
    assert res.returncode == 0 and "reproduced" not in text and "reversed" not in text
    assert "left out 72 trial(s)" in text and "72 of profile mini" in text
    assert "no claim can be tested" in text and "--until-decided" in text


def test_an_axis_the_table_has_no_place_for_is_split_never_averaged(tmp_path):
    fake_store(TABLE1, tmp_path, value=lambda i, t: 0.02 + 0.01 * t.config.train.lr + 0.001 * t.config.seed,
               overrides=["grid.1.train.lr=[0.05,0.1]"])
    spec = load_spec(TABLE1, overrides=["grid.1.train.lr=[0.05,0.1]"])
    df = data.load(tmp_path, spec.task, expand(spec), "mini").trials
    long = tables.table(df, "table1", "test_loss").set_index(["row", "column"])
    for lr in (0.05, 0.1):
        cell = long.loc[("GRU", f"PreRNN [train.lr={lr}]")]
        assert cell.n == 3 and cell["mean"] == pytest.approx(0.02 + 0.01 * lr + 0.001)  # its own three seeds
        assert cell.paper == 0.0866 and cell.layout == "PreRNN"
    assert ("GRU", "PreRNN") not in long.index
    res = sweep("summary", TABLE1, "--set", "grid.1.train.lr=[0.05,0.1]", "--results-dir", tmp_path)
    text = " ".join(res.stdout.split())
    assert res.returncode == 0 and "GRU PreRNN [train.lr=0.05] > h=8" in text and "PreRNN [train.lr=0.1] > matched" in text
    assert "PreRNN [train.lr=0.1]" in text.split("the paper's table1")[1]  # its own line in the layout


def test_a_spec_claim_must_pick_one_configuration(write_spec):
    from .conftest import TOY

    spec = dict(TOY, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 8, "train.lr": [0.01, 0.02]},
                           {"model": "traditional", "cell": "vrnn", "hidden_dim": 8}],
                claims=[{"better": {"cell": "gru"}, "worse": {"cell": "vrnn"}},
                        {"better": {"cell": "lstm"}, "worse": {"cell": "vrnn"}}])
    path = write_spec(spec)
    with pytest.raises(SpecError) as e:
        expand(load_spec(path), str(path))
    text = "\n".join(e.value.problems)
    assert "claims.0.better {'cell': 'gru'}: picks 2 configurations, which differ in train.lr" in text
    assert "claims.1.better {'cell': 'lstm'}: picks no trial of the sweep" in text
    res = sweep("summary", path, "--results-dir", path.parent / "r")
    assert res.returncode == 2 and "picks 2 configurations" in res.stderr


def _summary_rows(stdout: str) -> dict:
    """claim -> (interval text, verdict) from the printed claims table."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^\s*(\S.*?>\s*\S.*?)\s{2,}([+-]\.\d+(?: \[[^\]]+\])?)\s+(\d+)\s+(\S.*?)\s*$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(4))
    return rows


def _html_rows(text: str, interval_col: str) -> dict:
    """claim -> (interval text, verdict) from an HTML table with claim, interval and verdict columns."""
    table = next(t for t in re.findall(r"<table.*?</table>", text, re.S) if interval_col in t)
    header = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", table.split("</thead>")[0])]
    header = header[-len(re.findall(r"<td[^>]*>", table.split("<tr>")[-1])):]  # a DataFrame's index header aside
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", table.split("</thead>")[1], re.S):
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        if cells:
            row = dict(zip(header, cells))
            rows[row["claim"]] = (row[interval_col], row["verdict"])
    return rows


def test_the_printed_line_the_report_row_and_the_notebook_row_agree(stores, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    alone, _ = stores
    printed = _summary_rows(sweep("summary", TABLE1, "--results-dir", alone).stdout)
    out = tmp_path / "r.html"
    assert sweep("report", TABLE1, "--results-dir", alone, "--output", out).returncode == 0
    report = _html_rows(out.read_text(), "improvement [the verdict's interval]")
    nb = nbformat.read(ROOT / "analysis/table1.ipynb", as_version=4)
    nb.cells[1].source = f'SWEEP_DIR = "{alone}"\nSPEC = "../sweeps/table1.yaml"\nPROFILE = None'
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "analysis")}}
                   ).execute()
    shown = next(o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                 if "unadjusted_95" in str(o.get("data", {}).get("text/html", "")))
    notebook = _html_rows(shown["data"]["text/html"], "improvement")
    assert len(printed) == len(report) == len(notebook) == 18
    assert printed == report == notebook
    verdicts = [v for _, v in printed.values()]
    assert any(v == "reproduced" for v in verdicts) and any(v.startswith("inconclusive") for v in verdicts)
    for interval, verdict in printed.values():  # each verdict is read off its own interval
        low, high = (float(x.replace("+", "")) for x in interval.split("[")[1].rstrip("]").split(","))
        assert (verdict == "reproduced") == (low > 0) and (verdict == "reversed") == (high < 0)


def test_a_profile_with_one_seed_says_no_claim_can_be_tested(tmp_path):
    fake_store(TABLE1, tmp_path, seeds=(0,))
    res = sweep("summary", TABLE1, "--set", "seeds=[0]", "--results-dir", tmp_path)
    text = " ".join(res.stdout.split())
    assert res.returncode == 0 and "no claim can be tested: every configuration has at most one completed seed" in text
    assert "seeds=[0,1,2]" in text and "inconclusive (n<2)" in text


@pytest.mark.bad_input
def test_each_profile_has_its_own_default_store_and_summary_writes_nothing(tmp_path):
    for profile in ("mini", "paper"):
        res = sweep("summary", TABLE1, "--profile", profile, cwd=tmp_path)
        assert res.returncode == 2 and f"no results in results/table1/{profile}" in res.stderr
    (tmp_path / "results/table1/trials").mkdir(parents=True)  # a store of the old layout
    res = sweep("summary", TABLE1, cwd=tmp_path)
    assert "results/table1 holds a store of the old layout" in res.stderr and "--results-dir results/table1" in res.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "results", "results/table1", "results/table1/trials"]


def test_a_claim_can_name_the_matched_size(write_spec):
    """``hidden_dim: matched`` in a claim picks the parameter-matched configuration, whose
    hidden size is resolved to a number per cell (the store's ``model.matched``)."""
    from analysis import claims as claimlib

    from .conftest import TOY

    spec = load_spec(write_spec(dict(TOY, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": [4, "matched"]}],
                                     claims=[{"better": {"hidden_dim": "matched"}, "worse": {"hidden_dim": 4}}])))
    trials = expand(spec)  # each selector picks exactly one configuration
    (claim,) = claimlib.spec_claims(spec)
    assert claim.better == {"model.matched": True}
    df = pd.DataFrame([{**__import__("records").flatten(t.config), "id": t.id} for t in trials])
    assert claimlib.select(df, claim.better).sum() == 1 and claimlib.select(df, claim.worse).sum() == 1
