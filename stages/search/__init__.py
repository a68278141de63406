"""Nearest videos in a collection by cosine similarity: an exact or approximate (faiss HNSW or
IVF) index over L2-normalised features, built once and cached in one file beside them."""
