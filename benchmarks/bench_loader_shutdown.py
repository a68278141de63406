"""What a persistent-worker loader costs when the garbage collector frees it (the kernel of
RESULTS section 21): `gc.collect()` of a reference cycle holding a `clip_loader` whose
workers ran an epoch, left to torch's finaliser (what training did before) against the same
loader stopped first with `stop_workers` (what training does now).

    python benchmarks/bench_loader_shutdown.py [--workers 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_info, print_machine, table  # noqa: E402
from stages.training.loading import clip_loader, stop_workers  # noqa: E402


class Holder:
    """Stands for a training task: it holds the loader and is part of a reference cycle."""


def collect_seconds(workers: int, stopped: bool) -> float:
    """Seconds from the end of the epoch until a `gc.collect()` has freed the cycle holding
    the loader (with `stopped`, stopping its workers first is counted too)."""
    holder = Holder()
    holder.loader = clip_loader(list(range(64)), None, batch_size=8, workers=workers,
                                pin_memory=False)
    for _ in holder.loader:
        pass
    holder.itself = holder
    started = time.perf_counter()
    if stopped:
        stop_workers(holder.loader)
    del holder
    gc.collect()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print_machine(machine_info())
    gc.disable()  # only the explicit collection frees the cycle
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.runs):
        for stopped in (False, True):
            times[stopped].append(collect_seconds(args.workers, stopped))
    rows = [[name, "/".join(f"{t:.2f}" for t in times[stopped]),
             f"{statistics.median(times[stopped]):.2f}"]
            for name, stopped in (("left to the collector (before)", False),
                                  ("stop_workers first (now)", True))]
    heading = f"stop + gc.collect() s, {args.workers} workers (runs)"
    print(table(["loader", heading, "median"], rows))


if __name__ == "__main__":
    main()
