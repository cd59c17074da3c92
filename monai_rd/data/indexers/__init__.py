"""Dataset indexers: one per on-disk layout, each writing a MONAI datalist with grouped, stratified splits."""

from monai_rd.data.indexers.btc import BTC_CLASSES, index_btc
from monai_rd.data.indexers.busi import BUSI_CLASSES, index_busi
from monai_rd.data.indexers.chestxray14 import CHESTXRAY14_FINDINGS, index_chestxray14
from monai_rd.data.indexers.covid_ct import COVID_CT_CLASSES, index_covid_ct
from monai_rd.data.indexers.folders import (
    expand_source,
    grouped_stratified_split,
    index_class_folders,
    index_csv,
    list_class_folders,
)
from monai_rd.data.indexers.isic import HAM10000_DX, ISIC2018_CLASSES, index_ham10000, index_isic2018
from monai_rd.data.indexers.mosmed import MOSMED_GRADES, index_mosmed, mosmed_classes
from monai_rd.data.indexers.registry import INDEXERS, index_dataset
