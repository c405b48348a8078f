"""Analysis on fixture stores with known values: aggregates, the paper's tables, figure data,
notebooks executed headless, and the HTML report (rendered in a real headless Chromium)."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from analysis import data, figures, tables
from analysis.data import MISSING
from launch.expand import expand
from launch.spec import load_spec

from .conftest import ROOT, sweep
from .stores import fake_store

T_975_2DOF = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom (from tables)


@pytest.fixture(scope="module")
def table1_store(tmp_path_factory):
    """Table 1, three seeds; trial 0 failed in every seed, trial 1 missing in every seed;
    the metric is 0.1 * (seed + 1) + 0.01 * (grid position), so every cell's seeds are 0.1 apart."""
    root = tmp_path_factory.mktemp("t1")
    spec, trials = fake_store(ROOT / "sweeps/table1.yaml", root, value=lambda i, t: 0.1 * (t.config.seed + 1) + 0.01 * (i // 3),
                              failed={0, 1, 2}, missing={3, 4, 5})
    return spec, trials, root


def test_aggregates_equal_a_direct_pandas_computation(table1_store):
    spec, trials, root = table1_store
    df = data.trials(root, spec.task, trials)
    assert len(df) == len(trials) == 72 and (df.status == MISSING).sum() == 3 and (df.status == "failed").sum() == 3
    agg = data.aggregate(df, ["model.cell", "model.model"], "test_loss").set_index(["model.cell", "model.model"])
    done = df[df.status == "completed"]
    direct = done.groupby(["model.cell", "model.model"]).test_loss.agg(["count", "mean", "std"])
    for key, r in direct.iterrows():
        assert agg.loc[key, "n"] == r["count"]
        assert agg.loc[key, "mean"] == pytest.approx(r["mean"]) and agg.loc[key, "std"] == pytest.approx(r["std"])
    # one hidden size of one cell: seeds give v, v + 0.1, v + 0.2 -> std 0.1, CI mean ± t(2) * 0.1 / sqrt(3)
    one = data.aggregate(df, ["model.cell", "model.model", "model.hidden_dim"], "test_loss")
    r = one[(one["model.cell"] == "lstm") & (one["model.hidden_dim"] == 32)].iloc[0]
    assert r.n == 3 and r["std"] == pytest.approx(0.1)
    assert (r.ci_high - r["mean"]) == pytest.approx(T_975_2DOF * 0.1 / np.sqrt(3))
    assert (r["mean"] - r.ci_low) == pytest.approx(T_975_2DOF * 0.1 / np.sqrt(3))


def test_table1_has_every_cell_with_paper_difference_and_status(table1_store):
    spec, trials, root = table1_store
    df = data.trials(root, spec.task, trials)
    long = tables.table(df, "table1", "test_loss")
    assert list(long.row.unique()) == ["VRNN", "LSTM", "GRU"]
    assert list(long.column.unique()) == ["h=8 (paper 256)", "h=16 (paper 512)", "h=32 (paper 1024)",
                                          "h=64 (paper 2048)", "h=128 (paper 4096)", "matched", "PreRNN"]
    cell = long.set_index(["row", "column"])
    assert cell.loc[("VRNN", "h=8 (paper 256)"), "status"] == "failed"  # grid point 0: failed in every seed
    assert cell.loc[("VRNN", "h=16 (paper 512)"), "status"] == "missing"  # grid point 1: never ran
    ok = cell.loc[("GRU", "PreRNN")]
    assert ok.status == "ok" and ok.n == 3 and ok.paper == 0.0866
    assert ok["diff"] == pytest.approx(ok["mean"] - 0.0866)
    wide = tables.wide(long)
    assert wide.loc["VRNN", "h=8 (paper 256)"] == "failed | 0.1414" and wide.loc["VRNN", "h=16 (paper 512)"].startswith("—")
    assert "(n=3)" in wide.loc["GRU", "PreRNN"] and "±" in wide.loc["GRU", "PreRNN"]
    assert wide.loc["GRU", "PreRNN"].endswith(f"| 0.0866 (Δ {ok['mean'] - 0.0866:+.4f})")


def test_table3_marks_vrnn_sih_not_applicable(tmp_path):
    spec, trials = fake_store(ROOT / "sweeps/table3.yaml", tmp_path, seeds=(0,))
    long = tables.table(data.trials(tmp_path, spec.task, trials), "table3", "test_accuracy")
    status = long.set_index(["row", "column"]).status
    assert status[("VRNN", "prernn-sih pretrained")] == "n/a" and (status.drop("VRNN", level=0) == "ok").all()
    assert long.set_index(["row", "column"]).paper[("LSTM", "prernn-sih pretrained")] == 0.935


def test_figure_data(table1_store):
    spec, trials, root = table1_store
    df = data.trials(root, spec.task, trials)
    hs = {d["cell"]: d for d in figures.hidden_size_data(df, "test_loss")}
    assert hs["LSTM"]["x"] == [8, 16, 32, 64, 128]
    assert hs["VRNN"]["x"] == [32, 64, 128]  # 8 failed, 16 missing: no point, not a zero
    pre = df[(df["model.cell"] == "gru") & (df["model.model"] == "prernn")].test_loss.mean()
    assert hs["GRU"]["prernn"] == {"GRU PreRNN": pytest.approx(pre)}
    long = tables.table(df, "table1", "test_loss")
    bars = figures.bars_data(long, tables.cell_values(df, "table1", "test_loss"))
    assert [b["cell"] for b in bars] == ["VRNN", "LSTM", "GRU"] and len(bars[0]["x"]) == 7
    gru = dict(zip(bars[2]["x"], bars[2]["points"]))  # every seed's value over its bar
    assert sorted(gru["PreRNN"]) == pytest.approx(sorted(df[(df["model.cell"] == "gru") & (df["model.model"] == "prernn")]
                                                         .test_loss))
    assert bars[0]["points"][0] == [] and bars[0]["status"][0] == "failed"
    assert figures.bars_data(long.iloc[:0]) == []  # nothing to draw: no figure
    # one band per configuration over its seeds: 24 configurations, one failed and one missing in every seed
    curves = figures.curves_data(data.load_epochs(root, spec.task), df, "test_loss")
    assert len(curves) == 22 and all(c["epoch"] == [0, 1, 2] and c["seeds"] == 3 for c in curves)
    assert all(lo <= y <= hi for c in curves for lo, y, hi in zip(c["low"], c["y"], c["high"]))
    timeline = figures.timeline_data(df)
    assert len(timeline) == 69 and {d["worker"] for d in timeline} == {"node1 local/100", "node1 local/101"}


@pytest.mark.parametrize("name", ["table1", "table2", "table3"])
def test_notebooks_execute_top_to_bottom(name, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    fake_store(ROOT / f"sweeps/{name}.yaml", tmp_path / "store", seeds=(0, 1), failed={0}, missing={1})
    nb = nbformat.read(ROOT / "analysis" / f"{name}.ipynb", as_version=4)
    assert "parameters" in nb.cells[1].metadata.get("tags", [])
    nb.cells[1].source = f'SWEEP_DIR = "{tmp_path / "store"}"\nSPEC = "../sweeps/{name}.yaml"\nPROFILE = None'
    # the fixture store ran two seeds: the notebook's expected trials must agree
    nb.cells[2].source = nb.cells[2].source.replace("load_spec(SPEC, PROFILE)", "load_spec(SPEC, PROFILE, ['seeds=[0,1]'])")
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "analysis")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum(o.output_type == "display_data" for o in outputs) >= 3  # the figures
    texts = [str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs]
    claims = next(t for t in texts if "unadjusted_95" in t)  # the claims, with their verdicts
    assert " > " in claims and ("inconclusive" in claims or "reproduced" in claims or "reversed" in claims)
    assert not any("left out" in t for t in texts)  # every figure had data


@pytest.fixture(scope="module")
def report(table1_store, tmp_path_factory):
    spec, trials, root = table1_store
    out = tmp_path_factory.mktemp("report") / "table1.html"
    res = sweep("report", ROOT / "sweeps/table1.yaml", "--set", "seeds=[0,1,2]", "--results-dir", root, "--output", out)
    assert res.returncode == 0, res.stderr
    return out


def test_report_is_complete_and_self_contained(report):
    text = report.read_text()
    assert "Table1: ours | the paper's" in text and "0.0866" in text  # the paper's value beside ours
    # the claims and their verdicts come first, before the table and the figures
    assert text.index("<h2>Claims</h2>") < text.index("Table1: ours") < text.index("<h2>Figures</h2>")
    assert "18 claims:" in text and "left out" not in text
    assert "Trials that did not complete (6)" in text and "injected for the test" in text
    section = text[text.index("Trials that did not complete"):text.index("All trials")]
    assert section.count(">missing<") == 3 and section.count("class=bad>failed") == 3
    for item in ("profile", "commit", "abc123", "backend", "local", "hardware", "x86_64, 2 CPUs", "min wall"):
        assert item in text
    assert "<script src=" not in text and "Plotly.newPlot" in text  # plotly.js embedded: works offline
    assert text.count("Plotly.newPlot") == 4  # hidden size, bars, learning curves, timeline


def test_a_figure_without_data_is_left_out_with_a_note(tmp_path):
    """No traditional trial ran: no hidden-size axis to draw, so no empty plot, but a line
    saying why; the other figures are drawn."""
    spec = load_spec(ROOT / "sweeps/table1.yaml", overrides=["seeds=[0,1]"])
    traditional = {i for i, t in enumerate(expand(spec)) if t.config.model.model == "traditional"}
    fake_store(ROOT / "sweeps/table1.yaml", tmp_path / "store", seeds=(0, 1), missing=traditional)
    out = tmp_path / "r.html"
    res = sweep("report", ROOT / "sweeps/table1.yaml", "--set", "seeds=[0,1]", "--results-dir", tmp_path / "store",
                "--output", out)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "left out, hidden size vs metric: no completed traditional sizes" in text
    assert text.count("Plotly.newPlot") == 3  # bars, learning curves, timeline


def test_report_without_results_is_exit_2(tmp_path):
    res = sweep("report", ROOT / "sweeps/table1.yaml", "--results-dir", tmp_path / "none")
    assert res.returncode == 2 and "no results in" in res.stderr and not (tmp_path / "none").exists()


@pytest.fixture(scope="session")
def chromium():
    from .conftest import _service_or_skip

    path = shutil.which("chromium")
    _service_or_skip("Chromium", path is not None, "install it with: bash scripts/browser/install.sh")
    return path


def _headless(chromium, *args, timeout=120):
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--window-size=1200,4000", "--virtual-time-budget=20000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "HOME": "/tmp"})


def test_report_renders_in_headless_chromium(report, chromium, tmp_path):
    from PIL import Image

    dom = _headless(chromium, "--dump-dom", report.as_uri()).stdout
    assert dom.count('class="plot-container plotly"') == 4  # plotly ran and built every figure
    headings = re.findall(r"<h2>([^<]*)</h2>", dom)
    assert headings[0] == "Claims" and "18 claims:" in dom  # the claims and their verdicts first
    for figure in dom.split('class="plot-container plotly"')[1:]:  # no empty figure: each draws traces
        assert re.search(r'class="trace (bars|scatter)', figure)
    assert dom.count('class="main-svg"') >= 4 and "Trials that did not complete" in dom
    shot = tmp_path / "shot.png"
    _headless(chromium, f"--screenshot={shot}", report.as_uri())
    img = np.asarray(Image.open(shot).convert("L"), float)
    assert img.shape == (4000, 1200) and img.std() > 10  # not blank
    assert (img < 128).mean() > 0.005  # text, lines and bars drawn
