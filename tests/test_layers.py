"""The layers of the house: each package imports only the layers below it.

    prernn    the model and the trial                      (imports nothing of ours above it)
    records   the store, statuses, rows, provenance        (prernn)
    launch    spec, expansion, backends, search, runner     (prernn, records)
    analysis  tables, claims, figures, reports              (prernn, records)
    cli       the command line                              (everything)

``launch`` and ``analysis`` are siblings: neither imports the other.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAY_IMPORT = {
    "prernn": {"prernn"},
    "records": {"prernn", "records"},
    "launch": {"prernn", "records", "launch"},
    "analysis": {"prernn", "records", "analysis"},
    "cli": {"prernn", "records", "launch", "analysis", "cli"},
}
# scripts that are the command line itself, wherever they sit
ENTRY_POINTS = {"launch/sweep.py": "cli"}


def imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in the file, at any depth (lazy imports count)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, package if node.level else (node.module or "").split(".")[0]))
    return out


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            layer = ENTRY_POINTS.get(rel, package)
            for line, target in imports(path, package):
                if target in MAY_IMPORT and target not in MAY_IMPORT[layer]:
                    out.append(f"{rel}:{line}: {layer} imports {target}, a layer above it")
    return out


def test_no_layer_imports_a_layer_above_it():
    assert violations() == []


def test_a_violation_names_both_modules(tmp_path):
    for package in MAY_IMPORT:
        (tmp_path / package).mkdir()
    (tmp_path / "records" / "bad.py").write_text("def f():\n    from launch.spec import load_spec\n")
    (tmp_path / "analysis" / "worse.py").write_text("import launch.store\n")
    assert sorted(violations(tmp_path)) == ["analysis/worse.py:1: analysis imports launch, a layer above it",
                                            "records/bad.py:2: records imports launch, a layer above it"]


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_every_layer_has_modules(package):  # a renamed folder must not leave its rule checking nothing
    assert list((ROOT / package).rglob("*.py"))


def test_no_module_is_over_400_lines():
    long = {p.relative_to(ROOT).as_posix(): n for package in MAY_IMPORT for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
