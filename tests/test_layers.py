"""The layers of the house: each package imports only the layers below it.

    prernn    the model and the trial                      (imports nothing of ours above it)
    records   the store, statuses, rows, provenance        (prernn)
    launch    spec, expansion, backends, search, runner     (prernn, records)
    analysis  tables, claims, figures, reports              (prernn, records)
    cli       the command line                              (everything)

``launch`` and ``analysis`` are siblings: neither imports the other. Inside a package the
imports go one way too: no module imports, however lazily, a module that imports it back
(through any chain), so that no import needs to hide inside a function to work.
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


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path, root: Path) -> set[str]:
    """The modules of ours the file imports, at any depth, relative imports resolved; a name
    imported from a package counts as its submodule where there is one."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = {module_name(p, root) for p in root.rglob("*.py")}
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            out |= {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}
    return {m for m in out if m in known}


def cycles(root: Path = ROOT) -> list[str]:
    """Import cycles among the modules of each package: importing ``a.b.c`` runs ``a/__init__``
    and ``a/b/__init__`` too, except from inside ``a.b`` (already being imported then)."""
    graph = {}
    for package in MAY_IMPORT:
        for path in (root / package).rglob("*.py"):
            name = module_name(path, root)
            edges = set()
            for target in module_imports(path, root):
                parts = target.split(".")
                edges |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)
                          if not (name + ".").startswith(".".join(parts[:i]) + ".")}
            graph[name] = edges - {name}
    found, done = [], set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            found.append(" -> ".join(stack[stack.index(node):] + [node]))
            return
        if node in done or node not in graph:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, stack + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert cycles() == []


def test_a_cycle_through_a_lazy_import_is_named(tmp_path):
    for package in MAY_IMPORT:
        (tmp_path / package).mkdir()
    (tmp_path / "launch" / "__init__.py").write_text("")
    (tmp_path / "launch" / "backends").mkdir()
    (tmp_path / "launch" / "backends" / "__init__.py").write_text("from .local import run\n")
    (tmp_path / "launch" / "backends" / "local.py").write_text("def run():\n    from ..runner import execute\n")
    (tmp_path / "launch" / "runner.py").write_text("from .backends import Job\n")
    (tmp_path / "launch" / "fine.py").write_text("from launch.runner import execute\n")
    assert cycles(tmp_path) == ["launch.backends -> launch.backends.local -> launch.runner -> launch.backends"]


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
