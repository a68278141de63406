"""Clips for training and evaluation: reading frames and flow, choosing windows, augmenting."""
