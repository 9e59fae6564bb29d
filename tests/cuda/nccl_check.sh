#!/usr/bin/env bash
# nccl_check: the NCCL communicator on this machine's GPUs (a step of the device check). Builds
# tests/cuda/dev_comm_nccl.c with the communicator sources and runs it under mpirun with one
# rank per GPU: 2 ranks, and 3 and 4 (odd sizes) when the GPUs are there. With one GPU it runs a
# single rank only (NCCL refuses two ranks on one GPU): the multi-rank checks are skipped and
# the script says so. Exit status: 0 passed or skipped, 1 failed.
#
# usage: tests/cuda/nccl_check.sh [OUT_DIR]   (CUDA_HOME defaults to /usr/local/cuda)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
OUT=${1:-${OUT:-device-out}}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
if [ "${gpus:-0}" -lt 1 ]; then
    echo "nccl_check: skipped: no GPU"
    exit 0
fi
bin=$OUT/dev_comm_nccl
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -O2 -g -I. -isystem "$CUDA_HOME/include" $(pkg-config --cflags ompi-c) \
    tests/cuda/dev_comm_nccl.c cuda/comm_nccl.c engine/comm.c engine/comm_mpi.c engine/err.c \
    engine/model/dtype.c -o "$bin" -L"$CUDA_HOME/lib64" -Wl,-rpath,"$CUDA_HOME/lib64" -lnccl -lcudart \
    $(pkg-config --libs ompi-c) \
    -lm -pthread || { echo "nccl_check: FAILED to build"; exit 1; }

status=0
for n in 1 2 3 4; do
    if [ "$n" -gt "$gpus" ]; then
        echo "nccl_check: $n ranks skipped: $gpus GPU(s)"
        continue
    fi
    if timeout 120 mpirun --oversubscribe --bind-to none -np "$n" "$bin" > "$OUT/nccl-$n.log" 2>&1; then
        echo "nccl_check: $n rank(s): passed"
    else
        echo "nccl_check: $n rank(s): FAILED (see $OUT/nccl-$n.log)"
        tail -n 20 "$OUT/nccl-$n.log"
        status=1
    fi
done
exit $status
