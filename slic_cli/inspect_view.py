"""Rich tables for `slic inspect`."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from slic_cli.console import failures_table, key_value_table


def partitions_table(summary: dict[str, Any]) -> Table:
    """One row per partition: clusters and, with true labels, their quality scores."""
    status = f" ({summary['status']})" if summary.get("status") == "up to date" else ""
    written = f" -> {summary['output']}" if "output" in summary else ""
    made = f"\n{summary['made']}" if summary.get("made") else ""
    table = Table(title=f"{summary['num_videos']} videos clustered{status}{written}; "
                        f"pseudo-labels: {summary['chosen_from']}{made}", title_justify="left")
    columns = ["partition", "clusters", "nmi", "ami", "ari", "purity", "pair FP rate"]
    for column in columns if summary["quality"] else columns[:2]:
        table.add_column(column, justify="right")
    for level, count in enumerate(summary["num_clusters"]):
        scores = summary["quality"][level].values() if summary["quality"] else []
        table.add_row(str(level), str(count), *(f"{v:.3f}" for v in scores))
    if summary["chosen_from"].startswith("num_clusters"):
        scores = summary["quality"][-1].values() if summary["quality"] else []
        table.add_row("requested", str(summary["num_chosen_clusters"]),
                      *(f"{v:.3f}" for v in scores))
    return table


# What the demo's numbers are: a check that the pipeline learns on its synthetic data, never
# the paper's figures; the --quick budget is a smoke test of the pipeline and nothing more.
DEMO_CAPTION = ("synthetic data, a CPU budget: a check that SLIC learns (margin over random "
                "init), not the paper's numbers")
DEMO_SMOKE_TEST = ("--quick: a smoke test that every stage runs; at this budget the numbers "
                   "mean nothing")


def demo_table(summary: dict[str, Any]) -> Table:
    """slic demo's comparison: one row per metric, SLIC against random init."""
    caption = (DEMO_SMOKE_TEST if summary.get("budget") == "quick" else DEMO_CAPTION)
    caption += (f"\nslic retrieve --clips {summary['retrieve_clips']} --k 1,5 repeats the R@k "
                "and reuses their features (its default clips a video give other figures)")
    caption += "".join(f"\nwarning: {warning}" for warning in summary["warnings"])
    table = Table(title=f"slic demo ({summary['seconds']:.0f} s): SLIC against a randomly "
                        "initialised r3d_tiny, same budget", title_justify="left",
                  caption=caption, caption_justify="left")
    for column in ("metric", "SLIC", "random init", "how"):
        table.add_column(column, justify="right" if column in ("SLIC", "random init")
                         else "left")
    for row in summary["results"]:
        cells = ["-" if row[k] is None else f"{row[k]:.3f}" for k in ("slic", "random_init")]
        table.add_row(row["metric"], *cells, row["how"])
    return table


def demo_times_table(summary: dict[str, Any]) -> Table:
    """Where the demo's time went: wall seconds of each step (short when it was up to date)."""
    table = Table(title="time per step", title_justify="left")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step, seconds in summary["stage_seconds"].items():
        table.add_row(step, f"{seconds:.1f}")
    return table


def demo_files_table(summary: dict[str, Any]) -> Table:
    """Where the demo left its work: the workspace and the report page of each run."""
    rows = {"workspace": summary["workspace"]}
    for path, who in zip(summary["reports"], ("SLIC", "random init")):
        rows[f"report ({who})"] = path
    return key_value_table("open in a browser", rows)


def per_class_table(rows: list[dict[str, Any]]) -> Table:
    """Per-class retrieval: class, number of queries, R@1."""
    table = Table(title="per-class R@1", title_justify="left")
    for column in ("class", "queries", "R@1"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in rows:
        recall = row.get("r1")
        table.add_row(str(row["class"]), str(row["queries"]),
                      "-" if recall is None else f"{recall:.3f}")
    return table


def neighbours_table(queries: list[dict[str, Any]]) -> Table:
    """`slic search`: each query's neighbours, best first: rank, video id, path, similarity."""
    table = Table(title="nearest videos", title_justify="left")
    for column in ("query", "rank", "video", "path", "similarity"):
        table.add_column(column, justify="right" if column in ("rank", "similarity") else "left")
    for found in queries:
        for rank, neighbour in enumerate(found["neighbours"], start=1):
            table.add_row(str(found["query"]) if rank == 1 else "", str(rank),
                          str(neighbour["video_id"]), str(neighbour["relpath"]),
                          f"{neighbour['similarity']:.3f}")
    return table


def rounds_table(rounds: list[dict[str, Any]]) -> Table:
    """Pretraining's clustering rounds: epoch, clusters and (with labels) their quality."""
    table = Table(title="clustering rounds", title_justify="left")
    keys = [k for k in rounds[0] if k != "epoch"]
    for column in ["epoch", *keys]:
        table.add_column(column, justify="right")
    for row in rounds:
        table.add_row(str(row["epoch"]), *(f"{row[k]:.3f}" if isinstance(row[k], float)
                                           else str(row[k]) for k in keys))
    return table


def checkpoint_tables(description: dict[str, Any]) -> list[Table]:
    """A checkpoint: what it is and holds; parameters by top-level module."""
    epoch = description["epoch"]
    overview = {
        "file": description["path"], "size (bytes)": description["file_size"],
        "architecture": description["arch"] or "-",
        "epoch": "-" if epoch is None else ("random init" if epoch == -1 else epoch),
        "kept as": " ".join(str(description[k]) for k in ("criterion", "value")
                            if description[k] is not None) or "-",
        "resumable": "yes (optimizer state)" if description["resumable"] else "no (weights)",
        **({"settings of": description["compared_with"]} if description["compared_with"]
           else {}),
        "tensors": description["num_tensors"],
        "parameters": f"{description['num_parameters']:,}",
        "values incl. BatchNorm statistics": f"{description['num_values']:,}",
        "slic version": description["slic_version"] or "-",
        "holds": ", ".join(description["contents"]),
    }
    parts = Table(title="parameters by part", title_justify="left")
    for column in ("part", "parameters"):
        parts.add_column(column, justify="left" if column == "part" else "right")
    for part, count in description["parameters_by_part"].items():
        parts.add_row(part, f"{count:,}")
    return [key_value_table("checkpoint (read without unpickling)", overview), parts]


def results_tables(description: dict[str, Any]) -> list[Table]:
    """A results.json: its scalar numbers and settings, and the per-class table if any."""
    scalars = {key: (f"{value:.4f}" if isinstance(value, float) else value)
               for key, value in description.items()
               if isinstance(value, (str, int, float, bool)) or value is None}
    tables = [key_value_table(f"{description['stage']} results", scalars)]
    per_class = description.get("per_class") or []
    if per_class:
        table = Table(title="per class", title_justify="left")
        for column in per_class[0]:
            table.add_column(column, justify="left" if column == "class" else "right")
        for row in per_class:
            table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v)
                            for v in row.values()))
        tables.append(table)
    return tables


# Index columns left out of the terminal table (`--json --videos` has every column)
WIDE_VIDEO_COLUMNS = ("relpath", "checksum", "first_image", "src_width", "src_height",
                      "src_fps", "file_size")


def videos_table(rows: list[dict[str, Any]]) -> Table:
    """`inspect --videos`: one row per video; splits as `split:membership`."""
    table = Table(title=f"videos ({len(rows)})", title_justify="left")
    columns = [c for c in (rows[0] if rows else ["video_id"]) if c not in WIDE_VIDEO_COLUMNS]
    for column in columns:
        table.add_column(column, justify="left" if column in ("video_id", "class_name", "note",
                                                              "split", "splits") else "right")
    for row in rows:
        table.add_row(*(" ".join(f"{k}:{v}" for k, v in row[c].items())
                        if isinstance(row[c], dict) else
                        f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c])
                        for c in columns))
    return table


def _classes(count: int) -> str:
    """How many classes an artifact's videos have, or that they are unlabelled."""
    return str(count) if count else "none (unlabelled videos)"


def inspect_tables(description: dict[str, Any]) -> list[Table]:
    tables = _artifact_tables(description)
    if "videos" in description:
        tables.append(videos_table(description["videos"]))
    return tables


def _artifact_tables(description: dict[str, Any]) -> list[Table]:
    if description["kind"] == "checkpoint":
        return checkpoint_tables(description)
    if description["kind"] == "results":
        return results_tables(description)
    if description["kind"] == "assignments":
        tables = [key_value_table("assignments artifact", {
            "file": description["path"], "schema version": description["schema_version"],
            "command": description["provenance"].get("command", "-")}),
            partitions_table(description)]
        if description["rounds"]:
            tables.append(rounds_table(description["rounds"]))
        return tables
    if description["kind"] == "retrieval":
        return [key_value_table("retrieval artifact", {
            "file": description["path"], "schema version": description["schema_version"],
            "queries": description["num_queries"], "gallery": description["num_gallery"],
            **{f"R@{k}": f"{v:.4f}" for k, v in description["recall"].items()},
            "command": description["provenance"].get("command", "-")}),
            per_class_table(description["per_class"])]
    if description["kind"] == "features":
        return [key_value_table("features artifact", {
            "file": description["path"], "schema version": description["schema_version"],
            "videos": description["num_videos"], "dimensions": description["dim"],
            "feature": description["feature"], "classes": _classes(description["num_classes"]),
            "splits": json.dumps(description["splits"]),
            "source": json.dumps(description["source"]),
            "command": description["provenance"].get("command", "-")})]
    provenance = description["provenance"]
    overview = {
        "file": description["path"], "kind": description["kind"],
        "schema version": description["schema_version"],
        "size (bytes)": description["file_size"],
        "videos": description["num_videos"], "classes": _classes(description["num_classes"]),
        "images": description["num_images"],
        "splits": json.dumps(description["splits"]),
        "streams": ", ".join(f"{n} ({s['codec']}, {s['bytes']} bytes)"
                             for n, s in description["streams"].items()),
        "missing from disk": description["num_missing"],
        "command": provenance.get("command", "-"),
        "slic version": provenance.get("slic_version", "-"),
        "started": provenance.get("started", "-"), "finished": provenance.get("finished", "-"),
    }
    tables = [key_value_table(f"{description['kind']} artifact", overview)]
    inputs = Table(title="inputs", title_justify="left")
    for column in ("path", "size", "checksum"):
        inputs.add_column(column)
    for item in provenance.get("inputs", []):
        inputs.add_row(str(item.get("path", "-")), str(item.get("size", "")),
                       str(item.get("checksum", "")))
    tables.append(inputs)
    if description["classes"]:  # an unlabelled collection has none
        classes = Table(title="per class", title_justify="left")
        for column in ("class", "videos", "images"):
            classes.add_column(column, justify="left" if column == "class" else "right")
        for row in description["classes"]:
            classes.add_row(row["class"], str(row["videos"]), str(row["images"]))
        tables.append(classes)
    if description["failures"]:
        tables.append(failures_table(description["failures"]))
    return tables
