"""Typed errors a user can cause. The CLI prints their message as one line and exits non-zero."""


class SlicError(Exception):
    """A mistake in the input (file, key, value) with a message naming it and the fix.

    `every_rank`: raised by every rank of a torchrun job at the same point, after a check
    they agreed on (so they may wait for each other before they leave the process group)."""

    def __init__(self, *args: object, every_rank: bool = False) -> None:
        super().__init__(*args)
        self.every_rank = every_rank


class ConfigError(SlicError):
    """A config key that is unknown, of the wrong type or out of range."""


class DataError(SlicError):
    """A dataset root, split file or video list that cannot be used."""


class ArtifactError(SlicError):
    """An HDF5 artifact that is missing, of another kind, of a newer schema, or damaged."""


class TrainingDiverged(SlicError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class DiskFull(SlicError):
    """No space left where an artifact or checkpoint is written; what was written is kept."""


class RetryableFailure(Exception):
    """A per-video failure that says nothing about the video (its decoder was killed by a
    signal: the out-of-memory killer, a Ctrl-C that reached it): never recorded as the
    video's verdict; the next run of the command tries the video again."""


class VideosInterrupted(SlicError):
    """Some videos of a stage hit a RetryableFailure: the rest is kept, a rerun retries them."""
