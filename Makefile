SHELL := /bin/bash
# ngx_http_xray — see README.md.  The two commands a newcomer needs:
#   make run     build the module and start the demo
#   make test    build the module and run every test

BUILD     ?= $(CURDIR)/build
# the suites `make suite` and `make test-asan` run (make test runs them all)
T         ?= t/
MODULE    := $(BUILD)/ngx_http_xray_module.so
# not NGINX: nginx reads that environment variable as inherited sockets
NGINX_BIN ?= /usr/sbin/nginx
CC        ?= cc
FUZZ_SECS ?= 30

# what building and testing need, all from Debian
DEPS_BUILD := nginx nginx-dev libcjson-dev libpcre2-dev libssl-dev zlib1g-dev \
              gcc make
DEPS_TEST  := libtest-base-perl libtest-longstring-perl liblist-moreutils-perl \
              libtext-diff-perl liburi-perl libhttp-message-perl libwww-perl \
              libipc-run-perl libjson-pp-perl python3 python3-jsonschema \
              python3-aws-xray-sdk python3-botocore ca-certificates curl
# the demo's upstream and daemon stand-ins (with python3-botocore the
# stand-in also checks nginx's sampling calls against AWS's API model)
DEPS_RUN   := python3
DEPS_FUZZ  := clang libclang-rt-14-dev
# the browser test drives Debian's Chromium with playwright-core from npm
DEPS_E2E   := chromium
DEPS_BENCH := wrk valgrind util-linux

SRC_C    := $(wildcard src/*.c) ngx_http_xray_module.c
SRC_H    := $(wildcard src/*.h)
PURE_SRC := $(wildcard src/xray_*.c)

UNIT_CFLAGS := -std=c99 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Isrc \
               -fsanitize=address,undefined -fno-omit-frame-pointer
UNIT_LIBS   := -lcjson -lcrypto
UNIT_TESTS  := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/test_*.c))
FUZZERS     := $(patsubst t/unit/%.c,$(BUILD)/fuzz/%,$(wildcard t/unit/fuzz_*.c))
# the module's side of the sampling oracle test (t/013-sampling-oracle.t)
REPLAY      := $(BUILD)/unit/sampling_replay
# AWS's remote sampler from npm, the oracle; package-lock.json pins it
ORACLE      := t/oracle-sampler/node_modules/.package-lock.json
# tap.h and the reference implementations the tests compare the code with
UNIT_H      := $(wildcard t/unit/*.h)

# TEST_NGINX_LIB=/path/to/test-nginx/lib runs the suites under the real
# Test::Nginx instead of the project's own runner in t/runner.  Debian's
# nginx prints configuration errors on stderr only, which the real runner
# does not read: a wrapper sends them to the error log it checks.  The real
# runner has no listen-address setting; it writes "listen $TEST_NGINX_SERVER_PORT;",
# so "127.0.0.1:1984" there keeps nginx on loopback, and its client, which
# takes TEST_NGINX_CLIENT_PORT before the server port, connects to 1984.
# the real-peer test prefers the newest X-Ray SDK for Python on the machine:
# python3 on PATH may have 2.x; Debian's python3-aws-xray-sdk is the fallback
SDK_PYTHON = $(shell for p in python3 /usr/bin/python3; do \
               $$p -c 'import aws_xray_sdk' 2>/dev/null \
               && { command -v $$p; break; }; done)
PROVE_ENV = TEST_NGINX_LOAD_MODULES=$(MODULE) \
             XRAYTEST_PYTHON=/usr/bin/python3 \
             XRAYTEST_SDK_PYTHON=$(SDK_PYTHON) \
             XRAYTEST_REPLAY=$(REPLAY) \
             $(if $(TEST_NGINX_LIB),NGINX_REAL_BINARY=$(NGINX_BIN) \
               TEST_NGINX_BINARY=$(CURDIR)/t/lib/nginx-errlog-wrapper \
               TEST_NGINX_SERVER_PORT=127.0.0.1:1984 \
               TEST_NGINX_CLIENT_PORT=1984, \
               TEST_NGINX_BINARY=$(NGINX_BIN))
PROVE_INC := $(if $(TEST_NGINX_LIB),-I $(TEST_NGINX_LIB),-I t/runner) -I t/lib

.PHONY: all deps deps-test deps-fuzz deps-e2e deps-oracle module unit e2e \
        test test-asan run fuzz bench clean suite oracle sampling-oracle

all: module

deps:
	@scripts/install-deps.sh $(DEPS_BUILD)

deps-test: deps
	@scripts/install-deps.sh $(DEPS_TEST)

deps-fuzz:
	@scripts/install-deps.sh $(DEPS_FUZZ)

module: deps $(MODULE)

$(MODULE): $(SRC_C) $(SRC_H) config scripts/build-module.sh
	scripts/build-module.sh $(BUILD)

$(BUILD)/unit/%: t/unit/%.c $(PURE_SRC) $(SRC_H) $(UNIT_H)
	@mkdir -p $(dir $@)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(PURE_SRC) $(UNIT_LIBS)

unit: deps-test $(UNIT_TESTS)
	prove --exec '' $(UNIT_TESTS)

$(REPLAY): t/unit/sampling_replay.c $(PURE_SRC) $(SRC_H)
	@mkdir -p $(dir $@)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(PURE_SRC) $(UNIT_LIBS)

$(ORACLE): t/oracle-sampler/package.json t/oracle-sampler/package-lock.json
	npm ci --prefix t/oracle-sampler --no-audit --no-fund

# what the suites need besides the module (npm ci needs the network: run
# `make sampling-oracle` before a suite in a network namespace)
sampling-oracle: $(ORACLE) $(REPLAY)

deps-e2e:
	@scripts/install-deps.sh $(DEPS_E2E)

# playwright-core as e2e/package-lock.json pins it; no browser download:
# the tests drive /usr/bin/chromium.  The W3C test's page is OpenTelemetry
# Web from the same lock file, bundled by esbuild when the test starts
e2e/node_modules/.package-lock.json: e2e/package.json e2e/package-lock.json
	npm ci --prefix e2e --no-audit --no-fund

# OpenTelemetry's W3C and X-Ray propagators, the oracle of the trace-context
# mapping, as t/oracle/package-lock.json pins them
t/oracle/node_modules/.package-lock.json: t/oracle/package.json \
                                          t/oracle/package-lock.json
	npm ci --prefix t/oracle --no-audit --no-fund

deps-oracle: t/oracle/node_modules/.package-lock.json

# what the propagators extract from and inject for each case of the corpus
oracle: deps-oracle
	node t/oracle/propagate.mjs t/oracle/corpus.json

e2e: module deps-e2e e2e/node_modules/.package-lock.json
	E2E_MODULE=$(MODULE) E2E_NGINX=$(NGINX_BIN) \
	    node --test e2e/browser.test.mjs e2e/w3c.test.mjs

test: module unit e2e sampling-oracle deps-oracle
	$(PROVE_ENV) prove $(PROVE_INC) t/

# make suite T=t/060-request-kinds.t: some suites only, without unit and e2e
suite: module deps-test sampling-oracle deps-oracle
	$(PROVE_ENV) prove $(PROVE_INC) $(T)

# make test-asan: the whole suite against nginx 1.22.1 built from Debian's
# sources with the module compiled in, under ASan + UBSan (LSan at exit);
# every nginx process writes its reports to $(ASAN_REPORTS)/san.<pid>, and a
# report that t/asan.supp does not cover fails the target.
ASAN_BUILD   ?= $(BUILD)/asan
ASAN_NGINX   := $(ASAN_BUILD)/objs/nginx
ASAN_REPORTS := $(ASAN_BUILD)/reports
ASAN_ENV = TEST_NGINX_LOAD_MODULES= \
    $(if $(TEST_NGINX_LIB),NGINX_REAL_BINARY,TEST_NGINX_BINARY)=$(ASAN_NGINX) \
    ASAN_OPTIONS=detect_leaks=1:log_path=$(ASAN_REPORTS)/san \
    LSAN_OPTIONS=suppressions=$(ASAN_BUILD)/lsan.supp \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0:log_path=$(ASAN_REPORTS)/san:suppressions=$(ASAN_BUILD)/ubsan.supp

test-asan: deps-test sampling-oracle deps-oracle
	scripts/build-asan.sh $(ASAN_BUILD)
	rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	$(PROVE_ENV) $(ASAN_ENV) prove --timer $(PROVE_INC) $(T); rc=$$?; \
	scripts/build-asan.sh --check-reports $(ASAN_REPORTS) && exit $$rc

$(BUILD)/fuzz/%: t/unit/%.c $(PURE_SRC) $(SRC_H) $(UNIT_H)
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined \
	    -o $@ $< $(PURE_SRC) $(UNIT_LIBS)

# each target runs for FUZZ_SECS seconds from its committed seed corpus
fuzz: deps deps-fuzz $(FUZZERS)
	@for f in $(FUZZERS); do \
	    name=$${f##*/fuzz_}; \
	    mkdir -p $(BUILD)/corpus/$$name; \
	    echo "== fuzz_$$name ($(FUZZ_SECS)s)"; \
	    $$f -max_total_time=$(FUZZ_SECS) -print_final_stats=1 \
	        $(BUILD)/corpus/$$name t/unit/corpus/$$name 2>&1 \
	        | grep -E '^(stat::number_of_executed_units|stat::peak_rss|==.*ERROR|SUMMARY)' \
	        ; test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

run: module
	@scripts/install-deps.sh $(DEPS_RUN)
	scripts/demo.sh $(MODULE)

# plain nginx against the module in one run: wrk ratios, instructions per
# request (callgrind), the emitter's rate, memory per SSE stream; a few
# minutes; the report also goes to build/bench/report.txt
bench: module
	@scripts/install-deps.sh $(DEPS_BENCH)
	bench/run.sh $(MODULE)

clean:
	rm -rf $(BUILD) t/servroot
