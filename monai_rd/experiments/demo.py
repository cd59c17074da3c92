"""The synthetic demo datasets: each names its bundle and writes images in that dataset's real layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from monai_rd.data import synthetic

__all__ = ["DemoDataset", "DEMO_DATASETS"]


class DemoDataset(NamedTuple):
    """A bundle and its synthetic data writer ``writer(folder, n, size, seed) -> dataset_dir``."""

    bundle: str
    writer: Callable[[str, int, int, int], str]


#: ``--dataset`` name -> its bundle and synthetic writer (``n`` images per class, or patients for ChestX-ray14)
DEMO_DATASETS = {
    "busi": DemoDataset(
        "rd_busi", lambda f, n, size, seed: synthetic.make_busi_like(f, n_per_class=n, size=size, seed=seed)
    ),
    "isic": DemoDataset(
        "rd_isic", lambda f, n, size, seed: synthetic.make_isic2018_like(f, n_per_class=n, size=size, seed=seed)
    ),
    "covid": DemoDataset(
        "rd_covid", lambda f, n, size, seed: synthetic.make_covid_ct_like(f, n_per_class=n, size=size, seed=seed)
    ),
    "btc": DemoDataset(
        "rd_btc",
        lambda f, n, size, seed: synthetic.make_btc_like(
            f, n_train_per_class=n, n_test_per_class=max(1, n // 4), size=size, seed=seed
        ),
    ),
    "chestxray": DemoDataset(
        "rd_chestxray", lambda f, n, size, seed: synthetic.make_chestxray14_like(f, n_patients=n, size=size, seed=seed)
    ),
}
