"""The teacher-feature cache works for volumes: RD from cached 3D-teacher features trains exactly like RD with the
teacher in the loop on the same seeded views (rd_mosmed's own transforms, a MedicalNet teacher, a 3D student)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.data import DataLoader
from monai.utils import set_determinism

from monai_rd.data import CachedFeatureDataset, FeatureCache, SeededViewDataset, index_mosmed
from monai_rd.data.synthetic import make_mosmed_like
from monai_rd.engines import RDTrainer
from monai_rd.losses import RDLoss
from monai_rd.networks import RDNet, StudentClassifier, build_teacher
from tests.conftest import BUNDLES
from tests.helpers.volume_sources import TencentResNet3D, randomize, save_data_parallel

TEACHER = "medicalnet_resnet10"
SIDE = 16


def mosmed_transform(split: str):
    parser = ConfigParser()
    parser.read_config(os.path.join(BUNDLES, "rd_mosmed", "configs", "train.json"))
    parser.update({"image_size": SIDE})
    return parser.get_parsed_content(f"{split}::preprocessing")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vol_cache")
    root = make_mosmed_like(tmp / "data", n_per_grade=2, shape=(24, 24, 8))
    datalist = index_mosmed(root, labeling="binary", test_fraction=0.2, val_fraction=0.2)
    weights = str(tmp / "resnet_10_23dataset.pth")
    save_data_parallel(randomize(TencentResNet3D(10)), weights)
    cache = str(tmp / "cache" / "training")
    options = {"input_size": SIDE}
    fc = FeatureCache(cache, datalist["training"], mosmed_transform("train"), TEACHER, weights, options)
    fc.build(build_teacher(TEACHER, weights=weights, **options), views=2, batch_size=4, progress=False)
    return {"datalist": datalist, "weights": weights, "cache": cache, "options": options, "fc": fc}


def _train(dataset, teacher, seed=0):
    set_determinism(seed=seed)
    student = StudentClassifier("monai:resnet10", num_classes=2, spatial_dims=3)
    net = RDNet(teacher, student, num_blocks=1, teacher_feature_shape=(512,))
    dataset.set_random_state(seed)
    loader = DataLoader(
        dataset,
        batch_size=4,
        shuffle=True,
        drop_last=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    trainer = RDTrainer(device=torch.device("cpu"), max_epochs=1, train_data_loader=loader, network=net,
                        optimizer=optimizer, loss_function=RDLoss())  # fmt: skip
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))
    trainer.run()
    return np.array(losses), torch.cat([p.detach().flatten() for p in student.parameters()])


def test_cached_volume_features_equal_the_teacher(setup):
    assert setup["fc"].feature_shape == (512,)
    ds = CachedFeatureDataset(setup["datalist"]["training"], mosmed_transform("train"), setup["cache"], TEACHER,
                              setup["weights"], setup["options"])  # fmt: skip
    teacher = build_teacher(TEACHER, weights=setup["weights"], **setup["options"])
    item = ds[0]
    with torch.no_grad():
        fresh = teacher(torch.as_tensor(item["image"])[None])[0]
    torch.testing.assert_close(torch.as_tensor(item["teacher_features"]).float(), fresh, rtol=1e-2, atol=1e-2)


@pytest.mark.slow
def test_cache_trains_like_teacher_in_the_loop(setup):
    dl, weights, options = setup["datalist"], setup["weights"], setup["options"]
    in_loop = _train(SeededViewDataset(dl["training"], mosmed_transform("train"), views=2),
                     build_teacher(TEACHER, weights=weights, **options))  # fmt: skip
    from_cache = _train(
        CachedFeatureDataset(dl["training"], mosmed_transform("train"), setup["cache"], TEACHER, weights, options),
        None,
    )
    assert len(in_loop[0]) == len(from_cache[0]) > 0
    np.testing.assert_allclose(from_cache[0], in_loop[0], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(from_cache[1], in_loop[1], rtol=1e-3, atol=1e-4)
