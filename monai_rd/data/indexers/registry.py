"""Dataset indexers by name, so a bundle picks its on-disk format with one override (``dataset_format``)."""

from __future__ import annotations

from monai_rd.utils.registry import Registry
from monai_rd.data.indexers.btc import index_btc
from monai_rd.data.indexers.busi import index_busi
from monai_rd.data.indexers.chestxray14 import index_chestxray14
from monai_rd.data.indexers.covid_ct import index_covid_ct
from monai_rd.data.indexers.folders import index_class_folders
from monai_rd.data.indexers.isic import index_ham10000, index_isic2018
from monai_rd.data.indexers.mosmed import index_mosmed

__all__ = ["INDEXERS", "index_dataset"]

#: name -> indexer ``f(dataset_dir, datalist_file=..., **options) -> datalist``; ``options`` hold the split options
#: of :func:`~monai_rd.data.assign_splits` (``val_fraction``, ``seed`` ...; MosMedData has its own split)
INDEXERS = Registry("dataset format")
INDEXERS.register("busi", index_busi)
INDEXERS.register("isic2018", index_isic2018)
INDEXERS.register("ham10000", index_ham10000)
INDEXERS.register("covid_ct", index_covid_ct)
INDEXERS.register("btc", index_btc)
INDEXERS.register("chestxray14", index_chestxray14)
INDEXERS.register("class_folders", index_class_folders)
INDEXERS.register("mosmed", index_mosmed)


def index_dataset(dataset_format: str, dataset_dir: str, **kwargs) -> dict:
    """Index ``dataset_dir`` with the indexer registered as ``dataset_format`` (see ``INDEXERS.names()``)."""
    return INDEXERS.build(dataset_format, dataset_dir=dataset_dir, **kwargs)
