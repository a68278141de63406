"""Every public function, class and method of the library states what it returns: a public
name of `stages/` without a docstring fails here, listed as file:line name."""

import ast
from pathlib import Path

import stages

LIBRARY = Path(stages.__file__).resolve().parent


def missing_docstrings(root: Path) -> list[str]:
    """`file:line name` of each public module-level function or class, and each public method
    of a module-level class, that has no docstring (paths relative to `root`'s parent)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if (isinstance(node, (ast.FunctionDef, ast.ClassDef))
                    and not node.name.startswith("_") and not ast.get_docstring(node)):
                found.append(f"{where}:{node.lineno} {node.name}")
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if (isinstance(sub, ast.FunctionDef) and not sub.name.startswith("_")
                            and not ast.get_docstring(sub)):
                        found.append(f"{where}:{sub.lineno} {node.name}.{sub.name}")
    return found


def test_the_library_is_walked():
    assert (LIBRARY / "pretrain.py").is_file()


def test_every_public_name_has_a_docstring():
    missing = missing_docstrings(LIBRARY)
    assert not missing, (f"{len(missing)} public functions, classes or methods of stages/ lack "
                         "a docstring:\n" + "\n".join(missing))
