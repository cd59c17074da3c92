"""Cached-feature datasets: the student sees exactly the view whose features it gets, and RD from the cache
trains like RD with the teacher in the loop."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from ignite.metrics import Accuracy
from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset
from monai.utils import set_determinism

from monai_rd.data import (
    CachedFeatureDataset,
    FeatureCache,
    FeatureCacheError,
    SeededViewDataset,
    cached_feature_shape,
    feature_cache_dataset,
    index_busi,
    make_dataloader,
    preprocessing_dataset,
)
from monai_rd.engines import RDEvaluator, RDTrainer
from monai_rd.handlers import probs_and_class_indices
from monai_rd.losses import RDLoss
from monai_rd.networks import RDNet, StudentClassifier, build_teacher
from tests.data.test_feature_cache import bundle_transform
from tests.helpers import REPO
from tests.helpers.weights import random_resnet18_weights

TEACHER = "torchvision:resnet18"


@pytest.fixture(scope="module")
def cached(busi_dir, tmp_path_factory):
    """The busi_dir training/validation splits cached with the rd_busi transforms (K=3 training views)."""
    tmp = tmp_path_factory.mktemp("cached")
    weights = random_resnet18_weights(tmp / "teacher.pt", seed=0)
    teacher = build_teacher(TEACHER, weights=weights)
    datalist = index_busi(busi_dir, val_fraction=0.2, seed=0)
    root = str(tmp / "cache")
    for split, transform, views in (("training", "train", 3), ("validation", "validate", 1)):
        FeatureCache(os.path.join(root, split), datalist[split], bundle_transform(transform), TEACHER, weights).build(
            teacher, views=views, batch_size=8, progress=False
        )
    return {"root": root, "weights": weights, "teacher": teacher, "datalist": datalist}


def test_student_batch_is_the_cached_view(cached):
    ds = CachedFeatureDataset(cached["datalist"]["training"], bundle_transform(), os.path.join(cached["root"],
                              "training"), TEACHER, cached["weights"])  # fmt: skip
    assert ds.views == 3
    ds.set_random_state(0)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=0)
    seen_views = set()
    for _epoch in range(2):
        for batch in loader:
            # recompute T on the very images the student receives, compare with the cached features
            fresh = cached["teacher"](batch["image"].as_subclass(torch.Tensor))
            torch.testing.assert_close(batch["teacher_features"], fresh, rtol=1e-4, atol=1e-4)
            seen_views |= set(batch["teacher_view"].tolist())
    assert seen_views == {0, 1, 2}  # views are drawn, not always the first


def test_worker_processes_serve_matching_views(cached):
    ds = CachedFeatureDataset(cached["datalist"]["training"], bundle_transform(), os.path.join(cached["root"],
                              "training"), TEACHER, cached["weights"])  # fmt: skip
    loader = DataLoader(ds, batch_size=6, shuffle=False, num_workers=2)
    for batch in loader:
        fresh = cached["teacher"](batch["image"].as_subclass(torch.Tensor))
        torch.testing.assert_close(batch["teacher_features"], fresh, rtol=1e-4, atol=1e-4)


def test_bundle_dataset_factory(cached):
    data, t = cached["datalist"]["validation"], bundle_transform("validate")
    plain = feature_cache_dataset(data, t, None, "validation", TEACHER, cached["weights"])
    assert isinstance(plain, CacheDataset)  # deterministic preprocessing computed once ("auto")
    assert type(feature_cache_dataset(data, t, None, "validation", TEACHER, preprocessing_cache="none")) is Dataset
    ds = feature_cache_dataset(data, t, cached["root"], "validation", TEACHER, cached["weights"])
    assert isinstance(ds, CachedFeatureDataset) and ds.views == 1
    assert cached_feature_shape(cached["root"]) == (512,) and cached_feature_shape(None) is None
    with pytest.raises(FeatureCacheError, match="teacher"):  # the cache of another teacher is refused
        feature_cache_dataset(data, t, cached["root"], "validation", "torchvision:resnet34", cached["weights"])
    with pytest.raises(ValueError, match="split"):
        feature_cache_dataset(data, t, cached["root"], "test", TEACHER)


def train_rd(train_ds, val_ds, teacher, seed=0, epochs=2):
    """RD with RDTrainer/RDEvaluator; returns (per-iteration losses, per-epoch val accuracy, student params)."""
    set_determinism(seed=seed)
    student = StudentClassifier("resnet18", num_classes=3)
    net = RDNet(teacher, student, num_blocks=1, teacher_feature_shape=(512,))
    train_ds.set_random_state(seed)
    train_loader = DataLoader(train_ds, batch_size=8, shuffle=True, num_workers=0,
                              generator=torch.Generator().manual_seed(seed))  # fmt: skip
    val_loader = DataLoader(val_ds, batch_size=8, shuffle=False, num_workers=0)
    evaluator = RDEvaluator(device=torch.device("cpu"), val_data_loader=val_loader, network=net,
                            key_val_metric={"acc": Accuracy(output_transform=probs_and_class_indices)})  # fmt: skip
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    trainer = RDTrainer(device=torch.device("cpu"), max_epochs=epochs, train_data_loader=train_loader, network=net,
                        optimizer=optimizer, loss_function=RDLoss())  # fmt: skip
    losses, accs = [], []
    from ignite.engine import Events

    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))

    def validate(engine):
        evaluator.run()
        accs.append(evaluator.state.metrics["acc"])

    trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
    trainer.run()
    return np.array(losses), accs, torch.cat([p.detach().flatten() for p in student.parameters()])


@pytest.mark.slow
def test_training_from_cache_matches_teacher_in_the_loop(cached):
    dl, root, weights = cached["datalist"], cached["root"], cached["weights"]
    # teacher in the loop, on the same K seeded views (no features in the batch: RDNet runs T)
    in_loop = train_rd(SeededViewDataset(dl["training"], bundle_transform(), views=3),
                       SeededViewDataset(dl["validation"], bundle_transform("validate")),
                       build_teacher(TEACHER, weights=weights))  # fmt: skip
    from_cache = train_rd(
        CachedFeatureDataset(dl["training"], bundle_transform(), os.path.join(root, "training"), TEACHER, weights),
        CachedFeatureDataset(dl["validation"], bundle_transform("validate"), os.path.join(root, "validation"),
                             TEACHER, weights),
        None,
    )  # fmt: skip
    assert len(in_loop[0]) == len(from_cache[0]) == 2 * (len(dl["training"]) // 8 + (len(dl["training"]) % 8 > 0))
    np.testing.assert_allclose(from_cache[0], in_loop[0], rtol=1e-3, atol=1e-4)  # same loss at every iteration
    assert from_cache[1] == in_loop[1]  # same validation accuracy after each epoch
    torch.testing.assert_close(from_cache[2], in_loop[2], rtol=1e-3, atol=1e-4)  # same student


def _equal_items(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("mode", ["memory", "auto", "disk"])
def test_preprocessing_cache_gives_the_uncached_tensors(cached, tmp_path, mode):
    """Teacher in the loop: the cached deterministic head + the random rest == the whole transform, same seed."""
    data = cached["datalist"]["training"]
    mode = str(tmp_path / "pp") if mode == "disk" else mode
    plain = Dataset(data, bundle_transform())
    fast = preprocessing_dataset(data, bundle_transform(), mode)
    assert isinstance(fast, PersistentDataset if mode.startswith("/") else CacheDataset)
    for ds in (plain, fast):
        ds.transform.set_random_state(seed=7)
    for _epoch in range(2):  # the random part is redrawn per epoch in both
        for i in range(len(data)):
            _equal_items(fast[i], plain[i])
    if mode.startswith("/"):
        assert len(os.listdir(mode)) == len(data)  # one file per item, reused by the next run


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_seeded_views_with_preprocessing_cache_are_the_same_views(cached, tmp_path, mode):
    """From the feature cache: each (item, view) is the same image with or without the preprocessing cache, so the
    cached teacher features still belong to it; also through make_dataloader with worker processes."""
    dl = cached["datalist"]["training"]
    cache_dir = os.path.join(cached["root"], "training")
    mode = str(tmp_path / "pp") if mode == "disk" else mode
    plain = CachedFeatureDataset(dl, bundle_transform(), cache_dir, TEACHER, cached["weights"])
    fast = CachedFeatureDataset(dl, bundle_transform(), cache_dir, TEACHER, cached["weights"], preprocessing_cache=mode)
    assert fast._heads is not None
    for i in range(len(dl)):
        for k in range(3):
            _equal_items(fast.view_of(i, k), plain.view_of(i, k))
    batches = [list(make_dataloader(ds, batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(0)))
               for ds in (plain, fast)]  # fmt: skip
    assert len(batches[0]) == len(batches[1]) == -(-len(dl) // 4)
    for a, b in zip(*batches):
        for key in ("image", "teacher_features", "teacher_view", "label"):
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key


def test_make_dataloader_worker_choice(monkeypatch):
    from monai.data import ThreadDataLoader

    from monai_rd.data import default_num_workers

    assert default_num_workers(1) == 0 and default_num_workers(2) == 0
    assert default_num_workers(4) == 3 and default_num_workers(64) == 8
    ds = Dataset(list(range(10)))
    assert isinstance(make_dataloader(ds, batch_size=2, num_workers=0), ThreadDataLoader)
    loader = make_dataloader(ds, batch_size=2, num_workers=2)
    assert loader.num_workers == 2 and loader.persistent_workers and not loader.pin_memory
    assert [int(v) for b in loader for v in b] == list(range(10))
    with pytest.raises(ValueError, match="num_workers"):
        make_dataloader(ds, num_workers=-1)


def test_the_bundles_default_workers_never_exceed_the_cpus():
    import glob
    import json

    from monai.bundle import ConfigParser

    from monai_rd.data import available_cpus, capped_workers

    assert capped_workers(4, cpus=2) == 2 and capped_workers(4, cpus=16) == 4 and capped_workers(0, cpus=2) == 0
    configs = sorted(glob.glob(os.path.join(REPO, "bundles", "*", "configs", "*.json")))
    checked = 0
    for path in configs:
        with open(path) as f:
            config = json.load(f)
        if "num_workers" in config:
            parser = ConfigParser({"imports": ["$import monai_rd"], "num_workers": config["num_workers"]})
            assert parser.get_parsed_content("num_workers") == min(4, available_cpus()), path
            checked += 1
    assert checked >= 14  # train.json and inference.json of the seven bundles


def test_view_cache_and_deep_preprocessing_cache_train_bit_identically(cached):
    """RD from the feature cache with the views kept in memory and the deterministic head cached at depth (the
    defaults) trains exactly like the uncached path: same loss at every iteration, same student, bit for bit."""
    dl, root, weights = cached["datalist"], cached["root"], cached["weights"]

    def datasets(**opts):
        return (CachedFeatureDataset(dl["training"], bundle_transform(), os.path.join(root, "training"), TEACHER,
                                     weights, **opts),
                CachedFeatureDataset(dl["validation"], bundle_transform("validate"), os.path.join(root, "validation"),
                                     TEACHER, weights, **opts))  # fmt: skip

    plain = datasets(preprocessing_cache="none", view_cache="none")
    fast = datasets(preprocessing_cache="memory")
    assert fast[0].view_cache == "auto" and fast[0]._heads is not None
    before = train_rd(*plain, None, epochs=3)
    after = train_rd(*fast, None, epochs=3)
    assert len(fast[0]._kept) > 0  # views were served from memory in the later epochs
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1] == before[1]
    assert torch.equal(after[2], before[2])


def test_kept_views_are_the_computed_views(cached):
    dl = cached["datalist"]["training"]
    cache_dir = os.path.join(cached["root"], "training")
    plain = CachedFeatureDataset(dl, bundle_transform(), cache_dir, TEACHER, cached["weights"], view_cache="none")
    kept = CachedFeatureDataset(dl, bundle_transform(), cache_dir, TEACHER, cached["weights"], view_cache="memory")
    for _ in range(2):  # computed, then served from memory
        for i in range(len(dl)):
            for k in range(3):
                _equal_items(kept.view_of(i, k), plain.view_of(i, k))
    assert len(kept._kept) == 3 * len(dl) and not plain._kept
    assert not pickle_roundtrip(kept)._kept  # worker processes keep their own
    warm = CachedFeatureDataset(dl, bundle_transform(), cache_dir, TEACHER, cached["weights"], view_cache="memory")
    assert warm.views_kept == 0 and warm.fill_view_cache() == 3 * len(dl) == warm.views_kept
    for i, k in warm._kept:  # filled ahead: training is served the very views it would compute
        _equal_items(warm.view_of(i, k), plain.view_of(i, k))
    with pytest.raises(ValueError, match="keeps no views"):
        plain.fill_view_cache()
    with pytest.raises(ValueError, match="view_cache"):
        SeededViewDataset(dl, bundle_transform(), view_cache="disk")


def pickle_roundtrip(obj):
    import pickle

    return pickle.loads(pickle.dumps(obj))
