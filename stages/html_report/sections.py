"""The sections of a run's report, each built from `RunContents` (None when the run has
nothing for it): summary, configuration and provenance, training curves, clusters across
rounds, the embedding map, retrieval with its gallery, the classifiers, and the files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from stages.clips.store import ClipStore
from stages.evaluation.classification import MAX_CLASSES_WITH_COUNTS, confusion_figure
from stages.evaluation.gallery import balanced_queries, gallery_html
from stages.evaluation.random_init import RandomInit
from stages.html_report.contents import Evaluation, Retrieval, RunContents
from stages.html_report.embedding_map import embedding_figure
from stages.html_report.evolution import evolution_figure, summarise_rounds
from stages.html_report.markup import Section, details, escape, figure, key_values, table
from stages.html_report.provenance import Origin
from stages.training.curves import (
    CURVES,
    Curve,
    Panel,
    Series,
    curve_figure,
    key_figure,
    other_keys,
    points,
)

GALLERY_NEIGHBOURS = 5
CLASSIFIER_CURVE = Curve("classifier.png", "Classifier training", (
    Panel("loss (cross-entropy)", (Series("loss", "training loss"),)),
    Panel("accuracy (share of videos)", (Series("val_top1", "top-1 on the validation share"),),
          share=True)))


def _last(records: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in records if r.get(key) is not None]
    return values[-1] if values else None


def summary(contents: RunContents) -> Section:
    """The Summary section: what a random-init baseline's encoder is, epochs trained, final
    loss, R@k of each retrieval, the final clusters and their NMI, the last collapse measures
    and each classifier's top-1 (rows without a value left out)."""
    records = contents.records
    trained = [r["epoch"] for r in records if not r.get("final")]
    rows: dict[str, Any] = {"run folder": str(contents.folder),
                            "encoder": contents.baseline and contents.baseline.description(),
                            "epochs trained": max(trained) + 1 if trained else "not trained "
                            "(no metrics.jsonl)",
                            "final training loss": _last(records, "loss")}
    for retrieval in contents.retrievals:
        for k, value in sorted(retrieval.table.recall.items()):
            rows[f"R@{k}, {retrieval.folder.name} ({retrieval.made})"] = value
        if retrieval.warnings:
            rows[f"warnings, {retrieval.folder.name}"] = "; ".join(retrieval.warnings)
    if contents.rounds:
        rows["clusters, final round"] = int(contents.rounds[-1][1].chosen.max()) + 1
    clustered = [r for r in records if r.get("nmi") is not None]
    if clustered:
        rows[f"NMI of the pseudo-labels, last round (before epoch {clustered[-1]['epoch']}, "
             "the partition training used)"] = clustered[-1]["nmi"]
    # What needs no labels, so an unlabelled collection's run is summed up too.
    rows["mean pairwise cosine, last measured"] = _last(records, "mean_cosine")
    rows["effective rank, last measured"] = _last(records, "effective_rank")
    for evaluation in contents.evaluations:
        made = evaluation.results.get("made")
        rows[f"{evaluation.title}: top-1" + (f" ({made})" if made else "")] = (
            evaluation.results.get("top1"))
        if evaluation.results.get("warnings"):
            rows[f"{evaluation.title}: warnings"] = "; ".join(evaluation.results["warnings"])
    return Section("summary", "Summary", key_values(
        {key: value for key, value in rows.items() if value is not None}))


def _the_run(origin: Origin) -> str:
    """The run's own provenance (command, version, start and end of the pretraining) and the
    inputs it read."""
    made = {"command": origin.command, "slic version": origin.slic_version,
            "started": origin.started,
            "finished": origin.finished or "not finished (or not recorded)",
            "times": origin.note}
    body = "<h3>The run</h3>" + key_values({k: v for k, v in made.items() if v is not None})
    if origin.inputs:
        body += "<h3>Inputs</h3>" + table(
            ("path", "size (bytes)", "checksum"),
            [(i.get("path"), i.get("size"), i.get("checksum", "")) for i in origin.inputs])
    return body


def _the_baseline(baseline: RandomInit, settings: dict[str, Any]) -> str:
    """What a random-init baseline is, and its encoder settings (nothing of a training)."""
    rows = {"encoder": baseline.description(), "seed": baseline.seed,
            "compared with": None if baseline.compared_with is None
            else str(baseline.compared_with)}
    return ("<h3>The encoder</h3>" + key_values({k: v for k, v in rows.items() if v is not None})
            + "<h3>Encoder settings</h3>" + key_values(settings, columns=3))


def _later_files(artifacts: list[Origin]) -> str:
    """The provenance of each artifact in the folder, under its own name and with its own
    times."""
    return ("<h3>Files written in the folder, each with its own provenance</h3>" + table(
        ("file", "command", "slic version", "started", "finished", "note"),
        [(a.name, a.command or "", a.slic_version or "", a.started or "", a.finished or "",
          a.note or "") for a in artifacts]))


def configuration(contents: RunContents) -> Section | None:
    """How the run was made (its own command, version, start and end, inputs) or what a
    random-init baseline is, its pretraining (or encoder) settings, the provenance of every
    artifact written in the folder (later ones included, each under its own name), and the
    resolved config; None when none of these is known."""
    if not (contents.config or contents.origin or contents.artifacts or contents.baseline):
        return None
    body = ""
    if contents.baseline is not None:
        body += _the_baseline(contents.baseline, contents.config)
    elif contents.origin is not None:
        body += _the_run(contents.origin)
    if contents.pretrain_settings is not None:
        body += "<h3>Pretraining settings</h3>" + key_values(contents.pretrain_settings,
                                                               columns=3)
    if contents.artifacts:
        body += _later_files(contents.artifacts)
    if contents.config and contents.baseline is None:
        body += details(f"The whole resolved config ({contents.config_source}, YAML)",
                        f"<pre>{escape(yaml.safe_dump(contents.config, sort_keys=False))}</pre>")
    return Section("config", "Configuration and provenance", body)


def curves(contents: RunContents) -> Section | None:
    """One figure per CURVES entry with data, and one per other numeric key of metrics.jsonl; None
    without records."""
    records = contents.records
    if not records:
        return None
    parts = []
    for curve in CURVES:
        made = curve_figure(records, curve)
        if made is not None:
            drawn = [key for key in curve.keys if points(records, key)]  # NMI: only with labels
            parts.append(figure(made, f"{curve.title}: {', '.join(drawn)} "
                                      "(metrics.jsonl keys)"))
    for key in other_keys(records):
        made = key_figure(records, key)
        if made is not None:
            parts.append(figure(made, f"{key}, a metric without a curve of its own"))
    note = ('<p class="note">One point per epoch (per clustering round or evaluation for '
            "the metrics measured then); the point after the last epoch is the final "
            "clustering of the trained network. Source: metrics.jsonl.</p>")
    return Section("curves", "Training curves", note + "".join(parts))


def clusters(contents: RunContents) -> Section | None:
    """A table and a figure of every clustering round (counts, purity, NMI, AMI, kept, split and
    merged clusters); None without rounds."""
    if not contents.rounds:
        return None
    summaries = summarise_rounds(contents.rounds)
    rows = [(s.epoch, s.method, s.chosen_from, s.videos, s.clusters, s.singletons,
             s.largest_share, s.purity, s.nmi, s.ami, s.kept, s.split, s.merged)
            for s in summaries]
    note = ('<p class="note">Each clustering round re-clusters the training videos\' '
            "embeddings; its chosen partition gives the pseudo-labels of the next epochs. "
            "Purity: share of videos in their cluster's most common true class. Kept / split: "
            "clusters of the previous round whose videos went into one / several clusters of "
            "this round; merged: clusters of this round that gather videos of several "
            "previous clusters. Source: assignments.h5.</p>")
    return Section("clusters", "Clusters across rounds", note + table(
        ("epoch", "method", "partition", "videos", "clusters", "single videos",
         "largest share", "purity", "NMI", "AMI", "kept", "split", "merged"), rows)
        + figure(evolution_figure(summaries), "Clusters and their purity at each round"))


def embedding(contents: RunContents) -> Section | None:
    """A PCA map of the embeddings coloured by true class and by cluster (PNG, as it is dense); None
    without embeddings."""
    found = contents.embedding
    if found is None:
        return None
    made = embedding_figure(found.features, found.labels, found.class_names, found.clusters,
                            found.description)
    note = (f'<p class="note">The first two principal components of the L2-normalised '
            f"embeddings in {escape(found.source.name)} ({found.features.shape[1]} "
            "dimensions). ")
    if (found.labels >= 0).any():
        note += ("Videos of a class that sit together retrieve each other; clusters that "
                 "match the class colours make good pseudo-labels.</p>")
        caption = "Embeddings by true class (left) and by cluster (right)"
    else:
        note += "The videos are unlabelled: they are coloured by cluster only.</p>"
        caption = "Embeddings by cluster"
    return Section("embedding", "Embedding map", note + figure(made, caption, "png"))


def _gallery(found: Retrieval, frames: Path, queries: int) -> str:
    store = ClipStore(frames)
    row_of = {str(v): i for i, v in enumerate(store.table.columns["video_id"])}
    result = found.table
    if any(str(v) not in row_of for v in [*result.query_ids, *result.gallery_ids]):
        return (f'<p class="note">The gallery is left out: some of these videos are not in '
                f"{escape(frames)}.</p>")
    query_rows = np.array([row_of[str(v)] for v in result.query_ids])
    gallery_rows = np.array([row_of[str(v)] for v in result.gallery_ids])
    shown = balanced_queries(result.query_labels, queries)
    k = min(GALLERY_NEIGHBOURS, result.neighbours.shape[1])
    return (f"<h3>Gallery: {len(shown)} queries drawn evenly from the classes, and their "
            f"{k} nearest training videos</h3>"
            + gallery_html(store, query_rows, gallery_rows, result.neighbours[:, :k],
                           result.similarities[:, :k], shown))


def retrieval(contents: RunContents, queries: int) -> Section | None:
    """R@k and recall per class of each retrieval, and a gallery of `queries` test queries for the
    first whose frames.h5 is at hand; None without retrievals."""
    if not contents.retrievals:
        return None
    parts, shown = [], False
    for found in contents.retrievals:
        recall = found.table.recall
        parts.append(f"<h3>{escape(found.folder.name)}: {len(found.table.query_ids)} test "
                     f"queries, {len(found.table.gallery_ids)} training videos</h3>")
        parts.append(table([f"R@{k}" for k in sorted(recall)],
                           [[recall[k] for k in sorted(recall)]]))
        per_class = found.table.per_class
        if per_class:
            columns = list(per_class[0])
            parts.append(details("Recall per query class",
                                 table(columns, [[row[c] for c in columns]
                                                 for row in per_class])))
        if found.frames is not None and not shown:
            parts.append(_gallery(found, found.frames, queries))
            shown = True
    note = ('<p class="note">R@k: share of test videos with a training video of their class '
            "among their k nearest (cosine similarity of the mean embedding of several "
            "clips). Source: retrieval/*/retrieval.h5.</p>")
    return Section("retrieval", "Retrieval", note + "".join(parts))


def _classifier(evaluation: Evaluation) -> str:
    found = evaluation.results
    rows = {"top-1": found.get("top1"), "top-5": found.get("top5"),
            "best epoch": found.get("best_epoch"), "training videos": found.get("num_train"),
            "test videos": found.get("num_test"),
            "encoder": found.get("random_init") or found.get("encoder"),
            "folder": str(evaluation.folder)}
    parts = [f"<h3>{escape(evaluation.title)}</h3>",
             key_values({k: v for k, v in rows.items() if v is not None})]
    if evaluation.records:
        made = curve_figure(evaluation.records, CLASSIFIER_CURVE)
        if made is not None:
            parts.append(figure(made, f"{evaluation.title}: loss and validation accuracy "
                                      "per epoch"))
    matrix = evaluation.confusion
    if matrix is not None and matrix.size:
        names = evaluation.class_names
        made = confusion_figure(matrix, names, f"{evaluation.title}, top-1 "
                                f"{found.get('top1', 0):.3f}")
        parts.append(figure(made, "Confusion matrix: rows are true classes, columns "
                                  "predictions; colour is the share of the row",
                            "svg" if len(names) <= MAX_CLASSES_WITH_COUNTS else "png"))
    per_class = found.get("per_class") or []
    if per_class:
        columns = list(per_class[0])
        parts.append(details("Accuracy per class",
                             table(columns, [[row[c] for c in columns] for row in per_class])))
    return "".join(parts)


def classifiers(contents: RunContents) -> Section | None:
    """Each linear-probe and fine-tuning result: its numbers, training curve, confusion matrix and
    accuracy per class; None without any."""
    if not contents.evaluations:
        return None
    note = ('<p class="note">Top-k: share of test videos whose class is among the k most '
            "probable, the softmax averaged over the clips of each video. Source: "
            "*/results.json.</p>")
    return Section("classifiers", "Linear probe and fine-tuning",
                   note + "".join(_classifier(e) for e in contents.evaluations))


def files(contents: RunContents, page_folder: Path) -> Section:
    """Every file of the run with its size in bytes, linked relative to `page_folder`, the folder
    the page is written to."""
    base = os.path.relpath(contents.folder, page_folder)
    rows = [(f'<a href="{escape(Path(base, name).as_posix())}">{escape(name)}</a>', size)
            for name, size in contents.files]
    body = "".join(f'<tr><td>{link}</td><td class="n">{size:,}</td></tr>' for link, size in rows)
    return Section("files", "Files of the run", (
        f'<p class="note">Everything below {escape(contents.folder)}; sizes in bytes.</p>'
        f'<table class="numbers"><tr><th>file</th><th>size (bytes)</th></tr>{body}</table>'))
