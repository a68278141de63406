"""`slic report`: one self-contained HTML page of a run folder, readable offline."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.html_report import sections
from stages.html_report.contents import read_run
from stages.html_report.markup import Section, page
from stages.io.run_folder import RunFolder
from stages.io.write_guard import guard_output
from stages.runtime.context import now

GALLERY_QUERIES = 12


@dataclass
class ReportResult:
    """What `write_report` wrote: the page, the anchors of its sections and its size in bytes."""

    path: Path
    sections: list[str]
    size: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints: `report` (the path), `open` (a file:// URI),
        `sections`, `bytes` and `seconds`."""
        return {"stage": "report", "report": str(self.path), "open": self.path.resolve().as_uri(),
                "sections": self.sections, "bytes": self.size, "seconds": round(self.seconds, 3)}


def write_report(run_folder: Path, out: Path | None = None,
                 queries: int = GALLERY_QUERIES) -> ReportResult:
    """Write the report of `run_folder` to `out` (default `<run_folder>/report.html`),
    atomically; its gallery shows `queries` test queries drawn evenly from the classes."""
    clock = time.perf_counter()
    contents = read_run(Path(run_folder))
    path = guard_output(Path(out) if out is not None else RunFolder(contents.folder).report,
                        "page", option="--out")
    built: list[Section | None] = [
        sections.summary(contents), sections.configuration(contents),
        sections.curves(contents), sections.clusters(contents), sections.embedding(contents),
        sections.retrieval(contents, queries), sections.classifiers(contents),
        sections.files(contents, path.parent)]
    shown = [s for s in built if s is not None]
    document = page(f"slic report: {contents.folder.name}",
                    f"{contents.folder} · written {now()}", shown)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.writing")
    temporary.write_text(document, encoding="utf-8")
    os.replace(temporary, path)
    return ReportResult(path, [s.anchor for s in shown], path.stat().st_size,
                        time.perf_counter() - clock)
