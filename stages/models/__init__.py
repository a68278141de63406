"""Video encoders: backbones (a registry), the projection head, and the two joined.

`ARCHITECTURES` names the registry's entries without importing torch, so config checking and
`--help` stay fast; a test keeps it equal to `backbones.BACKBONES`.
"""

ARCHITECTURES = ("r3d_18", "r2plus1d_18", "s3d", "r3d_tiny")
