# mailedge — one plain GNU Makefile, no recursion.
#   make            the binary (build/mailedge)
#   make test       installs test dependencies, then unit + fuzz-corpus replay +
#                   integration, on the normal build and again under ASan+UBSan
#   make SAN=1 ...  any target on the sanitizer build (build/san/)
#   make V=1        show full commands

PROG     := mailedge
VERSION  := 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
CLANG    ?= clang
SAN      ?= 0
PYTHON   ?= /usr/bin/python3

ifeq ($(SAN),1)
BUILD    := build/san
OPT      := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD    := build
OPT      := -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fno-omit-frame-pointer
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wundef -Wvla -fno-common
PKGS     := libmicrohttpd libcurl libcares openssl json-c
# libsystemd is optional: sd_notify READY/STOPPING/WATCHDOG when present.
ifeq ($(shell pkg-config --exists libsystemd && echo yes),yes)
PKGS     += libsystemd
CPPFLAGS += -DHAVE_SYSTEMD=1
endif
PKG_CFLAGS := $(if $(PKGS),$(shell pkg-config --cflags $(PKGS)))
PKG_LIBS   := $(if $(PKGS),$(shell pkg-config --libs $(PKGS)))
# src/ has one folder per layer (docs/ARCHITECTURE.md; their order is in
# scripts/lint.sh). Each is on the include path: a file includes "x.h"
# whatever folder x is in.
SRCDIRS  := $(patsubst %/,%,$(wildcard src/*/))
CPPFLAGS += -D_GNU_SOURCE $(addprefix -I,$(SRCDIRS)) -DMAILEDGE_VERSION='"$(VERSION)"'
CFLAGS   += -std=c11 $(WARN) $(OPT) $(PKG_CFLAGS) -MMD -MP
LDLIBS   += $(PKG_LIBS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

SRCS       := $(filter-out src/cmd/main.c,$(wildcard $(SRCDIRS:=/*.c)))
OBJS       := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB        := $(BUILD)/libmailedge.a
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
REPLAY_BINS := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=$(BUILD)/replay/replay_%)
FUZZ_BINS  := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=build/fuzz/fuzz_%)
FUZZ_TIME  ?= 60

.PHONY: all test test-one unit replay integration interop check deps fuzz fuzz-deps valgrind bench mutate demo install clean format lint \
        image image-test deb deb-test prometheus-test

all: $(BUILD)/$(PROG)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/$(PROG): $(BUILD)/obj/cmd/main.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

$(BUILD)/replay/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< tests/fuzz/replay.c $(LIB) $(LDLIBS)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(SRCS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $<")
	$(Q)$(CLANG) $(CPPFLAGS) -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -o $@ $< $(SRCS) $(PKG_LIBS)

# The README's test command. Installs what the tests need (as root, with
# apt-get), then runs everything twice: normal build and ASan+UBSan.
test: deps
	$(Q)$(MAKE) --no-print-directory test-one SAN=0
	$(Q)$(MAKE) --no-print-directory test-one SAN=1

test-one: all unit replay integration interop

deps:
	$(Q)sh scripts/deps.sh test
	$(Q)$(PYTHON) tests/interop/mailstack.py install

unit: $(UNIT_BINS)
	$(Q)set -e; for t in $(if $(T),$(BUILD)/tests/$(T),$(UNIT_BINS)); do echo "  UNIT    $$t"; $$t; done

replay: $(REPLAY_BINS)
	$(Q)set -e; for r in $(REPLAY_BINS); do n=$${r##*/replay_}; \
	  echo "  REPLAY  $$n"; $$r tests/fuzz/corpus/$$n; done

integration: all
	$(Q)MAILEDGE_BIN=$(CURDIR)/$(BUILD)/$(PROG) MAILEDGE_SAN=$(SAN) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration $(if $(T),-k '$(T)')

# Real Postfix, Dovecot and HAProxy on loopback (tests/interop/README.md).
interop: all
	$(Q)MAILEDGE_BIN=$(CURDIR)/$(BUILD)/$(PROG) MAILEDGE_SAN=$(SAN) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider -m interop tests/interop $(if $(T),-k '$(T)')

# The integration suite with mailedge under valgrind memcheck (slow; not in
# CI, which runs the same suite under ASan+UBSan). docs/security.md.
VALGRIND = valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--track-fds=no --trace-children=no
valgrind: all
	$(Q)sh scripts/deps.sh valgrind
	$(Q)MAILEDGE_BIN=$(CURDIR)/$(BUILD)/$(PROG) MAILEDGE_WRAP="$(VALGRIND)" \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration $(if $(T),-k '$(T)')

check: test lint

# Each target for FUZZ_TIME seconds (CI: 60). New inputs go to build/fuzz/corpus;
# a crashing input is written to build/fuzz/crash/ and fails the run: copy it
# into tests/fuzz/corpus/NAME/ once fixed, so `make replay` keeps it.
fuzz: fuzz-deps $(FUZZ_BINS)
	$(Q)set -e; for f in $(FUZZ_BINS); do n=$${f##*/fuzz_}; mkdir -p build/fuzz/corpus/$$n build/fuzz/crash; \
	  echo "  FUZZ    $$n for $(FUZZ_TIME)s"; \
	  $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 -artifact_prefix=build/fuzz/crash/$$n- \
	    -dict=tests/fuzz/$$n.dict build/fuzz/corpus/$$n tests/fuzz/corpus/$$n 2>build/fuzz/$$n.log \
	    || { tail -n 40 build/fuzz/$$n.log; exit 1; }; \
	  grep -E '^stat::(number_of_executed_units|new_units_added)' build/fuzz/$$n.log | tr '\n' ' '; echo; done

fuzz-deps:
	$(Q)sh scripts/deps.sh fuzz

# mailedge vs HAProxy vs nginx stream vs direct (docs/performance.md).
# BENCH_QUICK=1 is the few-second smoke CI runs.
bench:
	$(Q)sh scripts/deps.sh bench
	$(Q)$(MAKE) --no-print-directory all
	$(Q)MAILEDGE_BIN=$(CURDIR)/$(BUILD)/$(PROG) sh bench/run.sh

# One-line changes to src/ (scripts/mutants.txt), each built in a scratch
# copy and run against its own tests; fails if one survives. Before a
# release, not in CI; the last result is in docs/security.md. M='name ...'
mutate:
	$(Q)sh scripts/mutate.sh $(M)

lint:
	$(Q)sh scripts/lint.sh

# The container image from Debian packages only (Containerfile,
# scripts/image.sh), and its test with podman on loopback. Slow: not part
# of `make test`; .ci/run calls it. Always the normal build.
image image-test:
	$(Q)sh scripts/deps.sh image
	$(Q)$(MAKE) --no-print-directory all SAN=0
	$(Q)sh scripts/image.sh $(if $(filter image-test,$@),test,build)

# The Debian package (debian/, scripts/deb.sh): dpkg-buildpackage, lintian;
# deb-test also installs it here, checks it and purges it (as root).
deb deb-test:
	$(Q)sh scripts/deps.sh deb
	$(Q)sh scripts/deb.sh $(if $(filter deb-test,$@),test,build)

# contrib/prometheus: promtool's checks and rule unit tests, then a real
# Prometheus scraping mailedge on loopback until an alert fires (~10 s).
prometheus-test: all
	$(Q)sh scripts/deps.sh prometheus
	$(Q)promtool check rules contrib/prometheus/mailedge-rules.yml
	$(Q)cd contrib/prometheus && promtool test rules mailedge-rules.test.yml
	$(Q)MAILEDGE_BIN=$(CURDIR)/$(BUILD)/$(PROG) MAILEDGE_SAN=$(SAN) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/prometheus

format:
	$(Q)clang-format -i src/*/*.c src/*/*.h tests/unit/*.c tests/fuzz/*.c

# The README's run command: Postfix and Dovecot on loopback behind mailedge.
demo:
	$(Q)sh scripts/deps.sh build
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh scripts/demo.sh $(BUILD)/$(PROG)

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 0755 $(BUILD)/$(PROG) $(DESTDIR)$(PREFIX)/sbin/$(PROG)
	install -m 0644 man/mailedge.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 man/mailedge.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -d $(DESTDIR)$(PREFIX)/share/mailedge
	install -m 0644 contrib/mailedge.service $(DESTDIR)$(PREFIX)/share/mailedge/

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(BUILD)/obj/cmd/main.d
