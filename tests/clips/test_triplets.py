from dataclasses import replace

import numpy as np
import pytest
import torch

from stages.clips.augment import AugmentSettings
from stages.clips.store import ClipStore
from stages.clips.triplets import EpochSampler, TripletClips, TripletSettings, item_generator
from stages.clips.windows import window_span
from stages.pretrain_config import PretrainConfig
from stages.slic_training import triplet_settings


@pytest.fixture(scope="module")
def store(motion_workspace):
    folder = motion_workspace / "synthetic"
    return ClipStore(folder / "frames.h5", folder / "flow.h5")


def _settings(**changes) -> TripletSettings:
    """The pretrain section's triplet settings at 4 frames and 32-pixel crops, changed."""
    augment = changes.pop("augment", None)
    settings = triplet_settings(PretrainConfig(clip_length=4, crop_size=32))
    return replace(settings, **changes, **({"augment": augment} if augment else {}))


def _dataset(store, **changes):
    return TripletClips(store, np.arange(len(store.table)), _settings(**changes), seed=5)


def test_items_depend_only_on_seed_epoch_and_video(store):
    first, second = _dataset(store), _dataset(store)
    order = [4, 0, 9]
    for index in order:
        a, b = first[(3, index)], second[(3, index)]
        for key in ("anchor", "positive", "augmented", "anchor_frames", "positive_frames"):
            assert torch.equal(a[key], b[key]), key
    assert not torch.equal(first[(3, 4)]["anchor"], second[(4, 4)]["anchor"])


def test_same_video_positive_does_not_overlap(store):
    data = _dataset(store, p_alpha=1.0, multiview=False)
    span = window_span(4, 1)
    for index in range(len(data)):
        item = data[index]
        assert item["positive_index"] == index
        assert abs(int(item["anchor_frames"][0]) - int(item["positive_frames"][0])) >= span
        assert item["anchor"].shape == (3, 4, 32, 32)


def test_cluster_positives_come_from_cluster_mates(store):
    data = _dataset(store, p_alpha=0.0)
    clusters = np.arange(len(data)) // 3
    data.set_clusters(clusters)
    for index in range(len(data)):
        item = data[index]
        assert item["positive_index"] != index
        assert clusters[item["positive_index"]] == clusters[index] == item["cluster"]


def test_p_beta_decides_the_flow_view(store):
    always_flow = _dataset(store, p_beta=0.0, flow_replaces="positive_and_augmented")
    never_flow = _dataset(store, p_beta=1.0, flow_replaces="positive_and_augmented")
    for index in range(6):
        flows = always_flow[index]
        assert flows["positive_flow"] and flows["augmented_flow"]
        rgb = never_flow[index]
        assert not rgb["positive_flow"] and not rgb["augmented_flow"]
    # A flow clip is gray: its three channels are equal (normalisation comes later).
    pixels = always_flow[0]["augmented"]
    assert pixels.dtype == torch.uint8 and torch.equal(pixels[0], pixels[2])


def test_flow_replaces_only_the_positive_by_default(store):
    poster, rgb = _dataset(store, p_beta=0.0), _dataset(store, p_beta=1.0)
    official = _dataset(store, p_beta=0.0, flow_replaces="positive_and_augmented")
    for index in range(6):
        item, both = poster[index], official[index]
        assert item["positive_flow"] and not item["augmented_flow"]
        assert both["positive_flow"] and both["augmented_flow"]
        assert torch.equal(item["positive"], both["positive"])
        assert torch.equal(item["augmented"], rgb[index]["augmented"])  # aug(x) stays RGB
    half = _dataset(store, p_beta=0.5, flow_replaces="positive_and_augmented")
    draws = [(half[i]["positive_flow"], half[i]["augmented_flow"]) for i in range(len(half))]
    assert {p for p, _ in draws} == {True, False} and {a for _, a in draws} == {True, False}
    assert any(p != a for p, a in draws)  # independent draws


def test_unknown_flow_replacement_is_refused():
    with pytest.raises(ValueError, match="flow_replaces"):
        _settings(flow_replaces="augmented")


def test_flow_augment_changes_only_the_flow_views(store):
    consistent = _dataset(store, p_beta=0.0)
    official = _dataset(store, p_beta=0.0,
                        augment=AugmentSettings(crop_size=32, flow_augment="official"))
    differs = False
    for index in range(6):
        a, b = consistent[index], official[index]
        assert torch.equal(a["anchor"], b["anchor"])
        differs |= not torch.equal(a["positive"], b["positive"])
    assert differs


def test_store_reads_flow_channels(store):
    frames = np.arange(4)
    u, v = store.flow(0, frames, "u"), store.flow(0, frames, "v")
    magnitude = store.flow(0, frames, "magnitude")
    assert u.shape == v.shape == magnitude.shape == (4, *store.rgb(0, frames).shape[1:3])
    assert u.dtype == magnitude.dtype == np.uint8
    uvm = store.flow(0, frames, "uvm")
    assert uvm.shape == (*u.shape, 3) and uvm.dtype == np.uint8
    for index, single in enumerate((u, v, magnitude)):
        assert np.array_equal(uvm[..., index], single)
    last = store.frame_count(0) - 1
    assert np.array_equal(store.flow(0, np.array([last]), "u"),
                          store.flow(0, np.array([last - 1]), "u"))


def test_sampler_splits_one_permutation_across_ranks():
    parts = [list(EpochSampler(11, seed=1, rank=r, world=3)) for r in range(3)]
    assert all(len(p) == 3 for p in parts) and len(EpochSampler(11, seed=1, world=3)) == 3
    joined = sum(parts, [])
    assert len(set(joined)) == 9
    again = EpochSampler(11, seed=1, rank=0, world=3)
    again.set_epoch(1)
    assert list(again) != parts[0]


def test_uvm_flow_view_shows_three_different_channels(store):
    item = _dataset(store, p_beta=0.0, flow_channel="uvm")[0]
    assert item["positive_flow"]
    positive = item["positive"]  # (3, T, S, S)
    assert positive.shape == item["anchor"].shape
    assert not torch.equal(positive[0], positive[1]) or not torch.equal(positive[1], positive[2])


def test_clip_contrast_changes_only_the_flow_views(store):
    stored = _dataset(store, p_beta=0.0)
    stretched = _dataset(store, p_beta=0.0, flow_contrast="clip")
    changed = False
    for index in range(4):
        a, b = stored[index], stretched[index]
        assert torch.equal(a["anchor"], b["anchor"]) and torch.equal(a["augmented"],
                                                                     b["augmented"])
        changed |= not torch.equal(a["positive"], b["positive"])
    assert changed


def test_sampler_alone_visits_every_item_once():
    """One process (the default rank 0 of world 1) gets the whole permutation."""
    sampler = EpochSampler(7, seed=2)
    order = [position for _, position in sampler]
    assert sorted(order) == list(range(7)) and len(sampler) == 7
    sampler.set_epoch(1)
    again = [position for _, position in sampler]
    assert sorted(again) == list(range(7)) and again != order


def test_sampler_order_is_drawn_from_a_stream_no_item_uses():
    """The visiting order must not be one item's random stream (seed, epoch, video), or the
    order would be tied to that item's windows and augmentations."""
    size, seed, epoch = 40, 4, 2
    sampler = EpochSampler(size, seed=seed)
    sampler.set_epoch(epoch)
    order = [position for _, position in sampler]
    for video in range(100):
        assert order != item_generator(seed, epoch, video).permutation(size).tolist(), video


def test_unknown_flow_settings_name_the_choices():
    with pytest.raises(ValueError, match="flow_replaces is 'x'; use one of positive, "
                                         "positive_and_augmented"):
        _settings(flow_replaces="x")
    with pytest.raises(ValueError, match="flow_contrast is 'x'; use one of stored, clip"):
        _settings(flow_contrast="x")
