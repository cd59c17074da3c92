#!/usr/bin/env bash
# GPU benchmark of RD (issue 15), ready for the day a GPU is available; about 10-15 minutes on one modern GPU.
#
# Prints the same table as monai-rd bench on the CPU: steady-state images/s of student-only, cached-RD and
# teacher-in-the-loop-RD training at 224 px (warm-up excluded, median and min/max over 3 windows of at least 8 steps
# and 2 s), (a), (b) and (d) next to their exact-FLOP bounds, and the breakdown of a step (batch wait, loader,
# forward, loss, backward, optimizer, engine; the device synchronised at every timestamp), with AMP (bf16) and
# channels_last each on and off, and the peak GPU memory of every mode (monai-rd bench --device cuda); then exercises the CUDA-only paths: fp16 autocast with a GradScaler, and DDP over NCCL
# (torchrun, every visible GPU). Results go to $OUT_DIR (default benchmarks/results/gpu) as JSON and a log.
# Refuses, with exit status 2, on a machine without CUDA: nothing is measured there.
#
#   bash benchmarks/gpu.sh                        # all of it
#   TEACHERS="resnet50" STUDENTS="resnet18" bash benchmarks/gpu.sh   # fewer pairs
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "benchmarks/gpu.sh: CUDA is not available on this machine ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)')):" \
         "nothing measured. Run it on a machine with an NVIDIA GPU; on the CPU use monai-rd bench." >&2
    exit 2
fi

OUT_DIR=${OUT_DIR:-benchmarks/results/gpu}
TEACHERS=${TEACHERS:-"resnet50 lvmmed_vit_b"}
STUDENTS=${STUDENTS:-"resnet18 mobilenet_v3_small"}
WORK=$(mktemp -d -t rd_gpu_bench_XXXX)
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_bench.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOG"
START=$SECONDS
# shellcheck disable=SC2086  # word splitting of the name lists is intended
COMMON=(--device cuda --image_size 224 --images_per_class 64 --views 2 --batch_size 64 --teacher_batch_size 256
        --epochs 2 --repeats 3 --min_steps 8 --min_time 2 --build_repeats 3 --build_min_time 0.5 --num_workers auto --workdir "$WORK"
        --teachers $TEACHERS --students $STUDENTS)

for amp in none bf16; do
    for layout in "" --channels_last; do
        tag="${amp}${layout:+_channels_last}"
        echo "== amp $amp ${layout:-(contiguous)} ==" | tee -a "$LOG"
        timeout 240 "$PY" -m monai_rd.cli bench "${COMMON[@]}" --amp "$amp" $layout --json_out "$OUT_DIR/bench_$tag.json" \
            2>&1 | grep -v Warning | tee -a "$LOG" || echo "amp $amp $layout: FAILED or timed out" | tee -a "$LOG"
    done
done

echo "== fp16 autocast + GradScaler ==" | tee -a "$LOG"
timeout 120 "$PY" -m monai_rd.cli bench "${COMMON[@]}" --teachers resnet50 --students resnet18 --amp fp16 \
    --json_out "$OUT_DIR/bench_fp16.json" 2>&1 | grep -v Warning | tee -a "$LOG" || echo "fp16: FAILED" | tee -a "$LOG"

echo "== DDP over NCCL (fp16 + GradScaler) ==" | tee -a "$LOG"
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
timeout 60 "$PY" -m torch.distributed.run --standalone --nproc_per_node="$GPUS" -m monai_rd.cli bench --device cuda \
    --nccl_check --students resnet18 --image_size 224 --batch_size 64 2>&1 | grep -v Warning | tee -a "$LOG" \
    || echo "NCCL check: FAILED" | tee -a "$LOG"

rm -rf "$WORK"
echo "benchmarks/gpu.sh: done in $((SECONDS - START)) s; results in $OUT_DIR" | tee -a "$LOG"
