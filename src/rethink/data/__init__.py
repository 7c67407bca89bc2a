"""Datasets for rethink: where they are found, how they are read, fetched and prepared.

    ds = rethink.data.load("fashion-mnist", train_size=4000)      # uint8 (N, C, H, W)
    prep = rethink.data.prepare(ds, preprocess="paper", corruption="random-labels", seed=0)

`names()` lists the registered datasets; any folder or tar of `split/class/image` files loads
as `imagefolder:PATH[@SIZE]`.
"""

from rethink.data._paths import cache_dir
from rethink.data.dataset import Dataset, stratified_indices, subset
from rethink.data.download import SOURCES
from rethink.data.imagefolder import load_imagefolder
from rethink.data.prepare import Prepared, prepare
from rethink.data.preprocess import PREPROCESS, preprocess
from rethink.data.registry import (
    ENTRIES,
    Entry,
    clear_cache,
    entry,
    fetch,
    from_arrays,
    load,
    locate,
    names,
    verify,
)

__all__ = [
    "ENTRIES",
    "PREPROCESS",
    "SOURCES",
    "Dataset",
    "Entry",
    "Prepared",
    "cache_dir",
    "clear_cache",
    "entry",
    "fetch",
    "from_arrays",
    "load",
    "load_imagefolder",
    "locate",
    "names",
    "prepare",
    "preprocess",
    "stratified_indices",
    "subset",
    "verify",
]
