"""Reports of a run folder: one self-contained HTML page (`write_report`) with the config and
provenance, training curves, clusters across rounds, an embedding map, retrieval with a
gallery of moving thumbnails, and the classifiers' results."""
