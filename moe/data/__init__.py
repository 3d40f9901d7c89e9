"""Datasets by name: the plugins, one small file each, registered in ``DATASETS`` (``moe/data/base.py``)."""
from moe.data.base import (  # noqa: F401  (re-exported)
    DATASETS, Dataset, dataset_options, declared_input_shape, default_data_root, first_subset, hold_out, load_dataset,
    load_for_config, normalized, prepare, shaped, stratified_subset, subset, validation_size,
)
from moe.data import gm6, mnist, planted, text  # noqa: F401,E402  (register)
