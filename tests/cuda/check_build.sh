#!/usr/bin/env bash
# The CUDA build's gate, run by `make cuda-test` without a GPU:
#   1. every kernel's ptxas report: a table (registers, shared memory, stack, spills); no
#      kernel may use a stack frame or spill (nvcc already fails on it; this proves the reports
#      were kept and read);
#   2. the binary's fatbinary holds an sm_90a cubin and compute_90a PTX for every kernel file;
#   3. its SASS: no local-memory loads or stores anywhere, and no fused multiply-add in the
#      kernels that must round like the CPU (RoPE, the MoE combine, the residual add);
#   4. ldd shows cuBLASLt and NCCL.
# usage: tests/cuda/check_build.sh KERNEL_OBJ_DIR SEEKD_BINARY
set -euo pipefail
objs=$1 bin=$2
here=$(cd "$(dirname "$0")/../.." && pwd)
tools=$(ls -d "$here"/.venv/lib/python3*/site-packages/nvidia/cu13/bin 2>/dev/null | head -1)
export PATH="${tools:+$tools:}$PATH"
fail=0
bad() { echo "check_build: $*"; fail=1; }

reports=$(find "$objs" -name '*.o.ptxas' | sort)
[ -n "$reports" ] || { echo "check_build: no ptxas reports under $objs"; exit 1; }
echo "kernel                                    regs   smem  stack  spill-st  spill-ld"
n=0
for r in $reports; do
    while IFS='|' read -r fn regs smem stack st ld; do
        printf '%-40s %5s %6s %6s %9s %9s\n' "$(echo "$fn" | c++filt | cut -c1-40)" "$regs" "$smem" "$stack" "$st" "$ld"
        n=$((n + 1))
        [ "$stack" = 0 ] && [ "$st" = 0 ] && [ "$ld" = 0 ] || bad "$fn uses local memory"
    done < <(awk '
        /Compiling entry function/ { fn = $0; gsub(/.*function .|. for .*/, "", fn) }
        /bytes stack frame/ { stack = $1; st = $5; ld = $9 }
        /Used [0-9]+ registers/ && fn != "" {
            regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
            smem = 0; if ($0 ~ /smem/) { smem = $0; sub(/ bytes smem.*/, "", smem); sub(/.* /, "", smem) }
            print fn "|" regs "|" smem "|" stack "|" st "|" ld; fn = "" }' "$r")
done
[ "$n" -gt 0 ] || bad "no kernel found in the ptxas reports"
echo "check_build: $n kernels"

command -v cuobjdump >/dev/null || { echo "check_build: cuobjdump missing (make venv installs it)"; exit 1; }
n_cu=$(echo "$reports" | wc -l)
n_elf=$(cuobjdump --list-elf "$bin" | grep -c 'sm_90a\.cubin' || true)
n_ptx=$(cuobjdump --list-ptx "$bin" | grep -c 'sm_90a\.ptx' || true)
[ "$n_elf" -eq "$n_cu" ] || bad "$n_elf sm_90a cubins in $bin for $n_cu kernel files"
[ "$n_ptx" -eq "$n_cu" ] || bad "$n_ptx compute_90a PTX files in $bin for $n_cu kernel files"
echo "check_build: fatbinary: $n_elf sm_90a cubins, $n_ptx compute_90a PTX"

sass=$(mktemp)
trap 'rm -f "$sass"' EXIT
cuobjdump --dump-sass "$bin" > "$sass"
! grep -Eq '\b(LDL|STL)\b' "$sass" || bad "local-memory instructions in the SASS"
for k in rope_kernel combine_kernel add_kernel; do
    body=$(awk -v k="$k" '/Function :/ { on = index($0, k) > 0 } on' "$sass")
    [ -n "$body" ] || bad "$k not found in the SASS"
    ! grep -q 'FFMA' <<<"$body" || bad "$k contracts to FMA: it would not round like the CPU"
done
echo "check_build: SASS: no LDL/STL; rope, combine and add round every operation"

libs=$(ldd "$bin")
grep -q 'libcublasLt\.so' <<<"$libs" || bad "$bin does not link cuBLASLt"
grep -q 'libnccl\.so' <<<"$libs" || bad "$bin does not link NCCL"
echo "check_build: links $(echo "$libs" | grep -oE 'lib(cublasLt|nccl)\.so\.[0-9]+' | sort -u | tr '\n' ' ')"
[ "$fail" -eq 0 ] && echo "check_build: ok"
exit "$fail"
