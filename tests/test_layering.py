"""Who may spell what, and which way imports run.

- HDF5: only `stages/io/artifacts` imports h5py, touches attributes or spells a dataset,
  group or attribute name; everyone else goes through its readers and writers.
- File names of a workspace or a run folder (frames.h5, best.pt, results.json, ...) are
  spelled only by their owners, `stages/runtime/workspace.py` and `stages/io/run_folder.py`.
- The import graph runs down: shared sub-packages never import a stage module (or the
  pipeline config that lists them), and the sub-packages import each other without cycles.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "stages"
ARTIFACTS = LIBRARY / "io" / "artifacts"
FILE_NAME_OWNERS = {LIBRARY / "runtime" / "workspace.py", LIBRARY / "io" / "run_folder.py"}
FILE_NAMES = ("frames.h5", "flow.h5", "features.h5", "assignments.h5", "retrieval.h5",
              "checkpoint.pt", "best.pt", "metrics.jsonl", "results.json", "config.yaml",
              "report.html", "confusion.png", "classifier.pt")
HDF5_NAMES = ("flow_u", "flow_v")  # stream names; attributes are caught as `.attrs`
HDF5_GROUPS = ("videos/", "classes/", "failures/", "images/", "partitions/", "rounds/")


def modules(*roots: Path) -> list[Path]:
    return sorted(path for root in roots for path in root.rglob("*.py")
                  if "__pycache__" not in path.parts)


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def code_strings(tree: ast.Module) -> Iterator[ast.Constant]:
    """String constants of the code, docstrings left out (prose may name files)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings):
            yield node


def imported(tree: ast.Module) -> Iterator[str]:
    """Every module name an import statement names, at any depth (lazy imports too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


OUTSIDE_ARTIFACTS = [p for p in modules(LIBRARY, ROOT / "slic_cli")
                     if ARTIFACTS not in p.parents]


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def test_only_the_artifact_package_speaks_hdf5() -> None:
    found = []
    for path in OUTSIDE_ARTIFACTS:
        tree = parsed(path)
        found += [f"{path.relative_to(ROOT)} imports h5py" for name in imported(tree)
                  if name.split(".")[0] == "h5py"]
        found += [f"{where(path, n)} touches HDF5 attributes" for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and n.attr == "attrs"]
        found += [f"{where(path, n)} spells {n.value!r}" for n in code_strings(tree)
                  if n.value in HDF5_NAMES or n.value.startswith(HDF5_GROUPS)]
    assert not found, "HDF5 outside io/artifacts: " + "; ".join(found)


def test_only_the_owners_spell_file_names() -> None:
    found = []
    for path in modules(LIBRARY, ROOT / "slic_cli"):
        if path in FILE_NAME_OWNERS:
            continue
        found += [f"{where(path, n)} spells {n.value!r}" for n in code_strings(parsed(path))
                  if not any(c.isspace() for c in n.value)
                  and n.value.rsplit("/", 1)[-1].lstrip(".").endswith(FILE_NAMES)]
    assert not found, ("file names outside runtime/workspace.py and io/run_folder.py: "
                       + "; ".join(found))


def test_the_checks_catch_what_they_ban() -> None:
    bad = ast.parse('import h5py\nh5.attrs["kind"] = 1\npath = folder / "best.pt"\n'
                    'name = "videos/video_id"\n')
    assert "h5py" in list(imported(bad))
    strings = [n.value for n in code_strings(bad)]
    assert "best.pt" in strings and "videos/video_id" in strings
    docstring_only = ast.parse('"""Writes best.pt."""\n')
    assert list(code_strings(docstring_only)) == []


def package_of(name: str) -> str | None:
    """The sub-package of a `stages.` module name, "<stage>" for a top-level module (a stage,
    its config, or the pipeline config); None for anything else (`stages.__version__`)."""
    parts = name.split(".")
    if parts[0] != "stages" or len(parts) < 2:
        return None
    if (LIBRARY / parts[1]).is_dir():
        return parts[1]
    return "<stage>" if (LIBRARY / f"{parts[1]}.py").is_file() else None


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in modules(LIBRARY):
        relative = path.relative_to(LIBRARY)
        if len(relative.parts) < 2:
            continue
        source = relative.parts[0]
        targets = {package_of(name) for name in imported(parsed(path))}
        graph.setdefault(source, set()).update(t for t in targets if t and t != source)
    return graph


def test_shared_packages_never_import_a_stage() -> None:
    upward = {package: sorted(targets) for package, targets in package_graph().items()
              if "<stage>" in targets}
    assert not upward


def test_the_package_graph_has_no_cycles() -> None:
    graph = package_graph()
    state: dict[str, str] = {}

    def visit(package: str, trail: list[str]) -> None:
        state[package] = "open"
        for target in sorted(graph.get(package, ())):
            assert state.get(target) != "open", f"import cycle: {' -> '.join(trail + [target])}"
            if target not in state:
                visit(target, trail + [target])
        state[package] = "done"

    for package in sorted(graph):
        if package not in state:
            visit(package, [package])
