"""Mutation score of the quick test loop over SLIC's core modules, with mutmut (3.x).

mutmut plants one small bug at a time (an operator, a constant, a comparison, a dropped
argument, ...) in every function of the core modules and runs the quick loop's tests that
reach that function (`pytest -m "not slow"`; mutmut picks the tests by what each one calls).
A mutant is killed when a test fails; it survives when every test passes; it has no tests
when no quick test reaches its function at all (it counts as a survivor here). A timeout
(the mutant made a test loop) counts as killed.

The work happens in a copy of the source tree (tracked and untracked files that git does not
ignore), so the checkout is never touched; `--work DIR` keeps it, and a second run in the same
DIR reuses the results of unchanged functions (pass `--fresh` to start over).

Equivalent mutants, which no test can kill because they do not change what the code computes
(for example a clamp at a bound the values never reach), are listed in
benchmarks/mutation_equivalent.tsv with the reason: the mutant's name, the mutated line as
mutmut prints it, and why. A listed mutant whose mutated line differs from the file's (the code
moved on) is not taken as equivalent.

    score = killed / (mutants - equivalent)        target: >= 0.90

Usage (from the repository root; mutmut is not a dependency of slic):
    pip install "mutmut>=3.3,<4"
    python benchmarks/bench_mutation.py [--work /tmp/slic-mutation] [--children 2]
        [--fresh | --retest] [--json out.json] [--only stages/clips/*]
"""

from __future__ import annotations

import argparse
import ast
import csv
import difflib
import json
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import REPO_ROOT, machine_info  # noqa: E402

# The modules whose semantics the quick loop must pin (the list).
CORE_MODULES = (
    "stages/clips/*",
    "stages/training/slic_step.py",
    "stages/training/losses.py",
    "stages/clustering/*",
    "stages/evaluation/*",
    "stages/flow/*",
)
# Tests that read the source files themselves (docstrings, import layering): mutmut's copy
# adds its own functions to every module, which they would rightly refuse.
SOURCE_READING_TESTS = ("tests/test_layering.py", "tests/test_docstrings.py")
EQUIVALENT_LIST = REPO_ROOT / "benchmarks" / "mutation_equivalent.tsv"
# A test process that a mutant made crash (SIGABRT or SIGSEGV inside faiss, say) saw it:
# counted as killed, as a failing test is.
STATUS_BY_EXIT_CODE = {1: "killed", 3: "killed", -6: "killed", -9: "killed", -11: "killed",
                       0: "survived", 5: "no tests", 33: "no tests", 36: "timeout",
                       24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
                       None: "not run"}


def source_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of the checkout."""
    listed = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-co", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return [name for name in listed if (REPO_ROOT / name).is_file()]


def prepare(work: Path, only: list[str], fresh: bool, left_out: list[str]) -> None:
    """Copy the source tree into `work` (keeping mutmut's results unless `fresh`) and write
    mutmut's settings into its setup.cfg; `left_out` test files are not run."""
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in source_files():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    ignored = "".join(f"    --ignore={test}\n" for test in [*SOURCE_READING_TESTS, *left_out])
    patterns = "".join(f"    {pattern}\n" for pattern in only)
    (work / "setup.cfg").write_text(
        "[mutmut]\n"
        "source_paths=\n    stages\n    slic_cli\n"
        f"only_mutate=\n{patterns}"
        "pytest_add_cli_args=-m\n    not slow\n    -p\n    no:cacheprovider\n" + ignored +
        "also_copy=\n    example.yaml\n    README.md\n    benchmarks\n    configs\n    .ci\n")


def run_mutmut(work: Path, children: int, names: list[str]) -> float:
    """`mutmut run` in `work`, of every mutant or of `names` only; returns the wall seconds."""
    clock = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(children),
                           *names], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"mutmut run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - clock


def results(work: Path) -> dict[str, str]:
    """Every mutant's status, from mutmut's .meta files: {mutant name: status}."""
    found: dict[str, str] = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            found[name] = STATUS_BY_EXIT_CODE.get(code, f"exit {code}")
    return found


class MutantSources:
    """The source of every function mutmut wrote into its copy of the modules, to tell what
    each mutant changed (in-process: `mutmut show` costs seconds a mutant)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.functions: dict[str, dict[str, str]] = {}

    def _functions_of(self, module: str) -> dict[str, str]:
        if module not in self.functions:
            lines = (self.work / "mutants" / module).read_text().splitlines()
            found = {}
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                        "__mutmut_" in node.name):
                    body = "\n".join(lines[node.lineno - 1:node.end_lineno])
                    # The def line carries the mutant's own name: compare from the signature on.
                    found[node.name] = body.split("(", 1)[1]
            self.functions[module] = found
        return self.functions[module]

    def changed_lines(self, name: str) -> str:
        """The lines mutant `name` adds to its function, stripped and joined by ' / '."""
        functions = self._functions_of(module_of(name))
        own = name.rsplit(".", 1)[1]
        original = functions.get(own.split("__mutmut_")[0] + "__mutmut_orig", "")
        added = [line[1:].strip() for line in difflib.unified_diff(
            original.splitlines(), functions.get(own, "").splitlines(), lineterm="", n=0)
            if line.startswith("+") and not line.startswith("+++")]
        return " / ".join(added) or "(a line removed)"


def equivalent_mutants() -> dict[str, tuple[str, str]]:
    """{mutant name: (mutated line, reason)} from the committed list."""
    if not EQUIVALENT_LIST.is_file():
        return {}
    with EQUIVALENT_LIST.open() as handle:
        rows = csv.reader((line for line in handle if not line.startswith("#")), delimiter="\t",
                          quoting=csv.QUOTE_NONE)
        return {row[0]: (row[1], row[2]) for row in rows if len(row) >= 3}


def module_of(name: str) -> str:
    """stages.clips.augment.x_crop_boxes__mutmut_3 -> stages/clips/augment.py"""
    return name.rsplit(".", 1)[0].replace(".", "/") + ".py"


def function_of(name: str) -> str:
    """stages.clips.augment.x_crop_boxes__mutmut_3 -> crop_boxes (methods as Class.method)."""
    own = name.rsplit(".", 1)[1].split("__mutmut_")[0]
    return own[2:] if own.startswith("x_") else own.strip("xǁ").replace("ǁ", ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/slic-mutation"))
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--fresh", action="store_true", help="discard earlier results in --work")
    parser.add_argument("--only", nargs="*", default=list(CORE_MODULES),
                        help="glob patterns of the modules to mutate (default: the core)")
    parser.add_argument("--json", type=Path, help="write every survivor and the table here")
    parser.add_argument("--no-run", action="store_true", help="only read the results in --work")
    parser.add_argument("--leave-out", nargs="*", default=[], metavar="TEST_FILE",
                        help="quick test files not to run (fewer kills, never more: for tests "
                        "that take seconds and reach every function, like the tiny pretrains)")
    parser.add_argument("--retest", action="store_true",
                        help="test again the mutants of --work that were not killed (mutmut "
                        "keeps every earlier result otherwise, even after tests were added)")
    args = parser.parse_args()

    seconds = 0.0
    if not args.no_run:
        again = ([name for name, state in results(args.work).items()
                  if state not in ("killed", "timeout")] if args.retest else [])
        prepare(args.work, args.only, args.fresh, args.leave_out)
        if not args.retest or again:
            seconds = run_mutmut(args.work, args.children, again)
    status = results(args.work)
    listed = equivalent_mutants()
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    sources = MutantSources(args.work)
    for name, state in status.items():
        module = module_of(name)
        if state in ("survived", "no tests"):
            line = sources.changed_lines(name)
            if name in listed and listed[name][0] == line:
                state = "equivalent"
            else:
                survivors.append({"mutant": name, "module": module, "function": function_of(name),
                                  "status": state, "line": line})
        counts[module]["timeout" if state == "timeout" else state] += 1
        counts[module]["mutants"] += 1

    print("| module | mutants | killed | timeout | survived | no tests | equivalent | score |")
    print("|---|---|---|---|---|---|---|---|")
    total: Counter = Counter()
    for module in sorted(counts):
        row = counts[module]
        total.update(row)
        print(table_row(module, row))
    print(table_row("**all**", total))
    measured = {module_of(name) for name in status}
    stale = sorted(name for name in set(listed) - {n for n, s in status.items()
                                                   if s in ("survived", "no tests")}
                   if module_of(name) in measured)
    info = machine_info()
    print(f"\n{len(survivors)} survivors; mutmut {seconds:.0f} s with {args.children} children; "
          f"{info.get('cpu', '?')}")
    if stale:
        print(f"{len(stale)} listed equivalents no longer survive or exist: {', '.join(stale)}")
    for survivor in survivors:
        print(f"  {survivor['status']:9s} {survivor['mutant']}: {survivor['line']}")
    if args.json:
        args.json.write_text(json.dumps({"table": {m: dict(c) for m, c in counts.items()},
                                         "score": score(total), "survivors": survivors,
                                         "seconds": seconds, "machine": info}, indent=1))
    print(f"score={score(total):.4f}")


def score(row: Counter) -> float:
    """Killed (timeouts included) over the mutants that are not equivalent."""
    considered = row["mutants"] - row["equivalent"]
    return (row["killed"] + row["timeout"]) / considered if considered else 1.0


def table_row(module: str, row: Counter) -> str:
    return (f"| {module} | {row['mutants']} | {row['killed']} | {row['timeout']} | "
            f"{row['survived']} | {row['no tests']} | {row['equivalent']} | {score(row):.3f} |")


if __name__ == "__main__":
    main()
