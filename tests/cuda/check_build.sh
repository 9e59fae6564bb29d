#!/usr/bin/env bash
# The CUDA build's gate, run by `make cuda-test` without a GPU:
#   1. every kernel's ptxas report: a table (registers, shared memory, stack, spills); no
#      kernel may use a stack frame or spill (nvcc already fails on it; this proves the reports
#      were kept and read);
#   2. the fatbinary of the device test program (which links every kernel file; seekd leaves out
#      what only tests call) holds an sm_90a cubin and compute_90a PTX for every kernel file;
#   3. its SASS: no local-memory loads or stores anywhere; no fused multiply-add in the kernels
#      that must round like the CPU (RoPE, the MoE combines, the residual add, the query's RoPE);
#      Hopper's FP8 tensor-core instruction (QGMMA, e4m3 × e4m3) in the CUTLASS GEMM that runs
#      the experts and the dense linears off cuBLASLt; BF16 tensor-core MMAs (HMMA) in the MLA
#      kernel; the saturating e4m3 conversion (F2FP.SATFINITE.E4M3) in the quantisers;
#   4. ldd shows cuBLASLt and NCCL in seekd.
# usage: tests/cuda/check_build.sh KERNEL_OBJ_DIR SEEKD_BINARY [DEVICE_TEST_BINARY]
set -euo pipefail
objs=$1 bin=$2 fat=${3:-$2}
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
n_elf=$(cuobjdump --list-elf "$fat" | grep -c 'sm_90a\.cubin' || true)
n_ptx=$(cuobjdump --list-ptx "$fat" | grep -c 'sm_90a\.ptx' || true)
[ "$n_elf" -eq "$n_cu" ] || bad "$n_elf sm_90a cubins in $fat for $n_cu kernel files"
[ "$n_ptx" -eq "$n_cu" ] || bad "$n_ptx compute_90a PTX files in $fat for $n_cu kernel files"
echo "check_build: fatbinary: $n_elf sm_90a cubins, $n_ptx compute_90a PTX"

sass=$(mktemp)
trap 'rm -f "$sass"' EXIT
cuobjdump --dump-sass "$fat" > "$sass"
! grep -Eq '\b(LDL|STL)\b' "$sass" || bad "local-memory instructions in the SASS"
# The SASS of one kernel: a plain function name (its mangled form starts _Z<length><name>), or
# a prefix of a mangled name.
body_of() {
    awk -v k="$1" '/Function :/ { f = $0; sub(/.*Function : /, "", f)
                                  on = f ~ /^_Z[0-9]/ ? index(f, "_Z" length(k) k) == 1 : 0
                                  if (!on) on = index(f, k) == 1 } on' "$sass"
}
for k in rope_kernel combine_kernel add_kernel combine_rows_kernel q_pack_kernel; do
    body=$(body_of "$k")
    [ -n "$body" ] || bad "$k not found in the SASS"
    ! grep -q 'FFMA' <<<"$body" || bad "$k contracts to FMA: it would not round like the CPU"
done
# kernel, the instruction it must hold, what that is
while read -r k ins what; do
    body=$(body_of "$k")
    [ -n "$body" ] || { bad "$k not found in the SASS"; continue; }
    n_ins=$(grep -c -- "$ins" <<<"$body" || true)
    [ "$n_ins" -gt 0 ] || bad "$k has no $ins ($what)"
    echo "check_build: $(echo "$k" | cut -c1-40): $n_ins x $ins ($what)"
done <<'EOF'
_ZN7cutlass13device_kernel QGMMA.64x[0-9]*x32.F32.E4M3.E4M3 FP8-tensor-cores
mla_tc_kernel HMMA.16816.F32.BF16 BF16-tensor-cores
norm_quant_kernel F2FP.SATFINITE.E4M3 e4m3-conversion
silu_quant_kernel F2FP.SATFINITE.E4M3 e4m3-conversion
EOF
echo "check_build: SASS: no LDL/STL; rope, the combines, add and q_pack round every operation"

libs=$(ldd "$bin")
grep -q 'libcublasLt\.so' <<<"$libs" || bad "$bin does not link cuBLASLt"
grep -q 'libnccl\.so' <<<"$libs" || bad "$bin does not link NCCL"
echo "check_build: links $(echo "$libs" | grep -oE 'lib(cublasLt|nccl)\.so\.[0-9]+' | sort -u | tr '\n' ' ')"
[ "$fail" -eq 0 ] && echo "check_build: ok"
exit "$fail"
