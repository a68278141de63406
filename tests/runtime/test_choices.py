"""The light vocabulary of config choices matches the registries that act on it."""

from stages.datasets import DATASETS
from stages.flow.methods import DIS_PRESETS, FLOW_METHODS
from stages.runtime import choices
from stages.synthetic.motion import MOTIONS


def test_flow_method_names_are_the_flow_registry() -> None:
    assert choices.FLOW_METHOD_NAMES == tuple(FLOW_METHODS)
    assert choices.DIS_PRESET_NAMES == tuple(DIS_PRESETS)


def test_synthetic_motions_are_the_motion_registry_in_order() -> None:
    assert choices.SYNTHETIC_MOTIONS == tuple(MOTIONS)


def test_dataset_layouts_are_the_dataset_registry() -> None:
    assert choices.DATASET_LAYOUTS == tuple(DATASETS)


def test_made_datasets_are_the_maker_registry() -> None:
    from stages.make_dataset import DATASET_MAKERS

    assert choices.MADE_DATASETS == tuple(DATASET_MAKERS)
