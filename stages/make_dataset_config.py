"""The `make_dataset` config section: size and look of the built-in synthetic dataset."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.choices import SYNTHETIC_MOTIONS
from stages.runtime.settings import setting


@dataclass
class MakeDatasetConfig:
    """make_dataset: size of the built-in synthetic dataset (slic make-dataset synthetic)"""

    num_classes: int = setting(8, "motion classes, taken in order from the built-in list",
                               minimum=2, maximum=len(SYNTHETIC_MOTIONS))
    groups_per_class: int = setting(6, "groups per class (UCF101-style gXX)", minimum=2)
    clips_per_group: int = setting(4, "videos per group (UCF101-style cYY)", minimum=1)
    test_groups: int = setting(2, "groups of each class held out as the test split", minimum=1)
    min_size: int = setting(112, "smallest frame side in pixels", minimum=32, maximum=1024)
    max_size: int = setting(160, "largest frame side in pixels", minimum=32, maximum=1024)
    min_seconds: float = setting(2.0, "shortest video duration", minimum=0.2)
    max_seconds: float = setting(4.0, "longest video duration", minimum=0.2)
    min_shot_seconds: float = setting(4.0, "shortest shot: every shot of a video draws a new "
                                      "background and start pose, object and motion go on",
                                      minimum=0.1)
    max_shot_seconds: float = setting(4.0, "longest shot (the default, at least max_seconds, "
                                      "makes one shot per video: a cut inside a clip "
                                      "dominates its frame differences)", minimum=0.1)
    class_shape_probability: float = setting(
        1.0, "probability that a video's object has its class's shape (else a random shape): "
        "the class shows in the object, as real actions come with their objects; 0 leaves "
        "motion alone to tell the classes apart", minimum=0.0, maximum=1.0)
    group_look: str = setting(
        "independent", "what the videos of one group share: independent (nothing but the "
        "class) or shared (object, background, frame size, speed and direction, as UCF101's "
        "groups are clips of one performance; each video still draws its own length and start "
        "poses)", choices=("independent", "shared"))
    fps: float = setting(25.0, "frame rate of the written videos", minimum=1.0, maximum=120.0)
    seed: int = setting(0, "seed: the same seed writes the same videos", minimum=0)
