"""The parts of `slic report`'s page: what a run folder holds (`contents`), its sections,
the HTML markup, the embedding map and the clusters' evolution across rounds."""
