"""What every stage runs on: the config (its sections, checks and YAML), the choice words, typed
user errors, progress reporting, provenance context, the workspace and run-folder layout, and
the per-video machinery that extract-frames and compute-flow share. Light: importing it loads
no torch, cv2, faiss or h5py."""
