"""Cached-feature datasets: the student sees exactly the view whose features it gets, and RD from the cache
trains like RD with the teacher in the loop."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torchvision
from ignite.metrics import Accuracy
from monai.data import DataLoader, Dataset
from monai.utils import set_determinism

from monai_rd.data import (
    CachedFeatureDataset,
    FeatureCache,
    FeatureCacheError,
    SeededViewDataset,
    cached_feature_shape,
    feature_cache_dataset,
    index_busi,
)
from monai_rd.engines import RDEvaluator, RDTrainer
from monai_rd.handlers import probs_and_class_indices
from monai_rd.losses import RDLoss
from monai_rd.networks import RDNet, StudentClassifier, build_teacher
from tests.test_feature_cache import bundle_transform

TEACHER = "torchvision:resnet18"


@pytest.fixture(scope="module")
def cached(busi_dir, tmp_path_factory):
    """The busi_dir training/validation splits cached with the rd_busi transforms (K=3 training views)."""
    tmp = tmp_path_factory.mktemp("cached")
    torch.manual_seed(0)
    weights = str(tmp / "teacher.pt")
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    teacher = build_teacher(TEACHER, weights=weights)
    datalist = index_busi(busi_dir, val_fraction=0.2, seed=0)
    root = str(tmp / "cache")
    for split, transform, views in (("training", "train", 3), ("validation", "validate", 1)):
        FeatureCache(os.path.join(root, split), datalist[split], bundle_transform(transform), TEACHER, weights).build(
            teacher, views=views, batch_size=8, progress=False)
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
    assert type(plain) is Dataset
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
