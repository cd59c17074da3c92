"""Data: dataset indexers that write MONAI datalists, split helpers and synthetic datasets in real layouts."""

from .btc import BTC_CLASSES, index_btc
from .busi import BUSI_CLASSES, index_busi
from .chestxray14 import CHESTXRAY14_FINDINGS, index_chestxray14
from .covid_ct import COVID_CT_CLASSES, index_covid_ct
from .datalist import datalist_hash, finalize_datalist, stratified_split, write_datalist
from .duplicates import difference_hash, group_near_duplicates, hamming_distances
from .folders import index_class_folders, list_class_folders
from .images import IMAGE_EXTENSIONS, list_images
from .isic import HAM10000_DX, ISIC2018_CLASSES, index_ham10000, index_isic2018
from .registry import INDEXERS, index_dataset
from .synthetic import (
    make_btc_like,
    make_busi_like,
    make_chestxray14_like,
    make_covid_ct_like,
    make_ham10000_like,
    make_isic2018_like,
)
