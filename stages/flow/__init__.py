"""Optical flow computed with PyTorch, batched over frame pairs, on any device."""
