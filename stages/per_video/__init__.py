"""The per-video machinery of the data stages (extract-frames, compute-flow): one job per
video, sharded across processes or torchrun ranks, resumable, merged into one artifact
(`jobs`), and the skeleton both stages share: cache check, processing, merge, result
(`stage`)."""
