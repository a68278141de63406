"""Optical flow: the method registry and uint8 storage convention (`methods`), and TV-L1 in
PyTorch, batched over frame pairs on any device (`tvl1`)."""
