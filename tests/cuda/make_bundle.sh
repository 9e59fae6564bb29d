#!/usr/bin/env bash
# Makes the bundle tests/cuda/device_check.sh takes to a GPU machine that has the CUDA toolkit
# but not this project's other libraries and no network (make devbundle runs it):
#   bin/      the CUDA build of seekd and the device tests
#   lib/      the Debian shared libraries they load that such a machine lacks (libmicrohttpd and
#             its TLS chain, jansson, libyaml, PCRE2): everything ldd names except glibc's own,
#             the C++ runtime and the CUDA libraries
#   sysroot/  their headers, for a rebuild there if the binaries do not start (another glibc)
#   py/       pytest and its pure-Python dependencies, and numpy as numpy.tar.xz, for a machine
#             whose python3 lacks them
#   cutlass/  the pinned CUTLASS headers (CUTLASS_DIR, from the Makefile) as headers.tar.xz, for
#             that rebuild (the GPU machine cannot pip install)
# usage: tests/cuda/make_bundle.sh DIR BINARY...
set -euo pipefail
dir=$1; shift
here=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/lib" "$dir/sysroot/include" "$dir/py"
cp "$@" "$dir/bin/"
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcublas|libnccl|libcudart)'
for b in "$@"; do
    ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name path; do
        [[ $name =~ $skip ]] || cp -L "$path" "$dir/lib/$name"
    done
done
for h in microhttpd.h jansson.h jansson_config.h yaml.h pcre2.h; do
    cp "/usr/include/$h" "$dir/sysroot/include/" 2>/dev/null ||
        cp "/usr/include/x86_64-linux-gnu/$h" "$dir/sysroot/include/"
done
site=$(ls -d "$here"/.venv/lib/python3*/site-packages | head -1)
for p in pytest _pytest pluggy iniconfig packaging pygments py.py; do cp -r "$site/$p" "$dir/py/"; done
find "$dir/py" -name __pycache__ -prune -exec rm -rf {} +
basename "$(dirname "$site")" > "$dir/py/PYTHON_VERSION" # numpy's wheel is for this python only
(cd "$site" && tar -cf - numpy numpy.libs numpy-*.dist-info | xz -1 -T2 > "$here/$dir/py/numpy.tar.xz")
if [ -n "${CUTLASS_DIR:-}" ] && [ -e "$CUTLASS_DIR/ok" ]; then
    mkdir -p "$dir/cutlass"
    basename "$CUTLASS_DIR" | sed 's/^cutlass-//' > "$dir/cutlass/VERSION"
    tar -cf - -C "$CUTLASS_DIR" cutlass_library/source/include cutlass_library/source/tools/util/include |
        xz -1 -T2 > "$dir/cutlass/headers.tar.xz"
fi
echo "bundle $dir: $(du -sh "$dir" | cut -f1) ($(ls "$dir/lib" | wc -l) libraries)"
