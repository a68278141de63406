"""Video encoders: backbones (the registry in `registry`, light to import), the projection
head, and the two joined."""
