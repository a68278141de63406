"""Clustering of video features: FINCH (first-neighbour relations) on faiss."""
