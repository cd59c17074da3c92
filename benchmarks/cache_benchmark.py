"""Teacher-feature cache benchmark (not a test): the four ratios of issue 4, measured side by side.

Same as ``monai-rd bench``; see ``monai_rd/experiments/bench.py`` for what is measured and how. Example (the run
recorded in docs/feature_cache.md)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/cache_benchmark.py --image_size 112 \
        --images_per_class 16 --views 2 --epochs 2 --threads 1
"""

from __future__ import annotations

import sys

from monai_rd.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
