"""Video encoders: backbones (a registry), the projection head, and the two joined.

The registry's names are `stages.runtime.choices.ARCHITECTURES`, importable without torch.
"""
