"""RD speed benchmark (not a test): student-only vs cached RD vs teacher-in-the-loop RD, next to exact FLOP bounds.

Same as ``monai-rd bench``; see ``monai_rd/experiments/bench.py`` for what is measured and how, and
``benchmarks/gpu.sh`` for the GPU run. Example (the CPU run recorded in the README, section "Speed")::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD nice -n 19 python benchmarks/cache_benchmark.py --image_size 112 \
        --images_per_class 8 --views 2 --epochs 1 --threads 1 --json_out benchmarks/results/bench_cpu.json
"""

from __future__ import annotations

import sys

from monai_rd.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
