# relayd: the single entry point.  make, make check, make demo, make bench,
# make fuzz, make install.

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	?= build
CC	?= cc
SAN	?=

# The version relayd -V and relayd_build_info report.
VERSION	 = 0.9.0

PKGS	 = libevent libevent_pthreads libevent_openssl libssl libcrypto libconfig libsystemd jansson
CFLAGS	?= -O2 -g
# Reasons and node names are cut to fit wire limits on purpose, so
# snprintf truncation is not an error.
CFLAGS	+= -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	   -Wpointer-arith -Wmissing-prototypes -Wstrict-prototypes -pthread \
	   -Wno-format-truncation
# TEST_HOOKS=1: the test build (build-test): the store worker can be
# slowed (RELAYD_TEST_STORE_DELAY_US) and checks that no chunk it holds
# changes under it.  Never installed.
TEST_HOOKS ?=
ifeq ($(TEST_HOOKS),1)
CFLAGS	+= -DRELAYD_TEST_HOOKS
endif
# TSAN=1: clang's ThreadSanitizer (make tsan).
TSAN	?=
ifeq ($(TSAN),1)
CC	 = clang
CFLAGS	+= -O1 -fsanitize=thread -fno-omit-frame-pointer \
	   -Wno-unknown-warning-option
LDFLAGS	+= -fsanitize=thread
endif
ifeq ($(SAN),1)
CFLAGS	+= -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
endif
# What relayd -V says it was built with.
BUILD_OPTS	 = $(if $(filter 1,$(SAN)),asan+ubsan,) \
		   $(if $(filter 1,$(TSAN)),tsan,) \
		   $(if $(filter 1,$(TEST_HOOKS)),test-hooks,)
CFLAGS	+= -DRELAYD_VERSION='"$(VERSION)"' \
	   -DRELAYD_BUILD_OPTS='"$(strip $(BUILD_OPTS))"'
PKG_CFLAGS	 = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS	 = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS	 = $(shell pkg-config --libs cmocka 2>/dev/null)

# Daemon modules (everything but main).
MODS	 = clock events util log wire stream store config route tls session outcome pipe \
	   xport peer peer_in peer_out control ctlproto metrics listener stats statstab
MOD_OBJS = $(MODS:%=$(BUILD)/%.o)

UNIT_TESTS = test_wire test_stream test_store test_config test_route test_ctlproto \
	     test_util test_listener test_clock test_events test_stats test_session \
	     test_peer test_pipe test_outcome test_log
UNIT_BINS  = $(UNIT_TESTS:%=$(BUILD)/%)

# Which modules each unit test links (kept small: a module is tested alone).
test_wire_MODS   = wire
test_stream_MODS = stream
test_store_MODS  = store stream log util
test_config_MODS = config log util
test_route_MODS  = route config log util
test_ctlproto_MODS = ctlproto
test_util_MODS   = util
test_listener_MODS = listener clock log util
test_clock_MODS  = clock
test_events_MODS = events
test_log_MODS    = log util
test_outcome_MODS = outcome clock util wire
test_stats_MODS  = stats statstab wire util
# pipe alone: its output and its owner are the test's ops tables.
test_pipe_MODS   = pipe clock stream wire log util stats
# session runs with the daemon's modules; the test stands in for relayd.c.
test_session_MODS = $(MODS) fixture
# peer likewise: the test plays the remote relay on a Unix socket.
test_peer_MODS = $(MODS) fixture

all: $(BUILD)/relayd $(BUILD)/relayctl $(BUILD)/loadgen

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/%.o: src/%.c src/*.h | $(BUILD)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -c -o $@ $<

# The bench's load generator (scripts/bench --load) and its system test.
$(BUILD)/loadgen: scripts/loadgen.c | $(BUILD)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags libssl libcrypto jansson 2>/dev/null) \
	    $(LDFLAGS) -o $@ $< \
	    $(shell pkg-config --libs libssl libcrypto jansson 2>/dev/null)

# -z now: the daemon binds every library symbol at start, so the first
# PUT after start does not pay the dynamic linker's lazy lookups on
# each hop (issue 17, cold start).  relayctl keeps lazy binding: it is
# short-lived and calls few of its symbols.
$(BUILD)/relayd: $(MOD_OBJS) $(BUILD)/relayd.o
	$(CC) $(LDFLAGS) -Wl,-z,now -pthread -o $@ $^ $(PKG_LIBS)

# relayctl: one file per command family in src/relayctl/, built into
# $(BUILD)/relayctl-*.o (the binary keeps the name $(BUILD)/relayctl).
CTL_SRCS = $(wildcard src/relayctl/*.c)
CTL_OBJS = $(CTL_SRCS:src/relayctl/%.c=$(BUILD)/relayctl-%.o)

$(BUILD)/relayctl-%.o: src/relayctl/%.c src/*.h $(wildcard src/relayctl/*.h) | $(BUILD)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -c -o $@ $<

# relayctl links libc and jansson only: put loads libcrypto when it hashes
# (src/relayctl/digest.c), so status and show start fast.
CTL_LIBS	 = $(shell pkg-config --libs jansson 2>/dev/null) -ldl

# Its log module is built without the journal (sd_journal_send is
# relayd's, and libsystemd is not among those libraries).
$(BUILD)/relayctl-log.o: src/log.c src/*.h | $(BUILD)
	$(CC) $(CFLAGS) -DLOG_NO_JOURNAL $(PKG_CFLAGS) -Isrc -c -o $@ $<

$(BUILD)/relayctl: $(CTL_OBJS) $(BUILD)/relayctl-log.o $(BUILD)/util.o
	$(CC) $(LDFLAGS) -o $@ $^ $(CTL_LIBS)

$(BUILD)/test_%.o: tests/unit/test_%.c src/*.h tests/unit/fixture.h | $(BUILD)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -Itests/unit -c -o $@ $<

# What the unit tests that run the daemon's modules share (fixture.h).
$(BUILD)/fixture.o: tests/unit/fixture.c tests/unit/fixture.h src/*.h | $(BUILD)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -Itests/unit -c -o $@ $<

.SECONDEXPANSION:
$(BUILD)/test_%: $(BUILD)/test_%.o $$(addprefix $(BUILD)/,$$(addsuffix .o,$$(test_$$*_MODS)))
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# The unit tests again under valgrind's memcheck: no errors, no leaks.
# Two at a time (two cores); the first failure stops the rest and shows
# that test's own output.
valgrind: $(UNIT_BINS)
	@printf '%s\n' $(UNIT_BINS) | xargs -P 2 -I{} sh -c \
	    'echo "== valgrind {}"; valgrind -q --leak-check=full \
	    --errors-for-leak-kinds=definite --error-exitcode=9 {} \
	    >{}.valgrind.log 2>&1 || { cat {}.valgrind.log; \
	    echo "valgrind {} failed"; exit 255; }'

# libFuzzer targets (clang 14), each run for FUZZ_SECONDS on its corpus.
FUZZ_SECONDS	?= 10
FUZZ_CC		 = clang
FUZZ_FLAGS	 = -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
FUZZ_BUILD	 = build-fuzz
fuzz_wire_SRCS	 = src/wire.c
fuzz_config_SRCS = src/config.c src/log.c src/util.c
fuzz_ctl_SRCS	 = src/ctlproto.c src/util.c
# The stateful relay target: every daemon module, with relayd.c (main
# renamed) and session.c compiled into the target itself so that it can
# look at sessions' timers; connect() and clock_gettime()
# are wrapped (fake next hop, fake time).  Inputs are frame sequences, so
# they may be longer than libFuzzer's default cap; relayd's log is
# silenced (-close_fd_mask=2), the sanitizers' reports are not.
fuzz_relay_SRCS	 = $(filter-out src/session.c,$(MODS:%=src/%.c))
fuzz_relay_CFLAGS = -D_GNU_SOURCE
fuzz_relay_LDFLAGS = -Wl,--wrap=connect -Wl,--wrap=clock_gettime
fuzz_relay_OPTS	 = -max_len=65536 -close_fd_mask=2 -timeout=30
FUZZ_TARGETS	 = wire config ctl relay

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c src/*.c src/*.h
	mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(fuzz_$*_CFLAGS) $(PKG_CFLAGS) -o $@ $< \
	    $(fuzz_$*_SRCS) \
	    $(fuzz_$*_LDFLAGS) $(PKG_LIBS)

fuzz: $(FUZZ_TARGETS:%=fuzz-run-%)

# Built only for a fuzz-run-%, but kept: not make's intermediate files.
.PRECIOUS: $(FUZZ_BUILD)/fuzz_%

fuzz-run-%: $(FUZZ_BUILD)/fuzz_%
	@echo "== fuzz_$* for $(FUZZ_SECONDS) s"
	@rm -rf $(FUZZ_BUILD)/new_$*; mkdir -p $(FUZZ_BUILD)/new_$*
	@if ! $(FUZZ_BUILD)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=$(FUZZ_BUILD)/ -print_final_stats=1 \
	    $(fuzz_$*_OPTS) $(FUZZ_BUILD)/new_$* tests/fuzz/corpus/$* \
	    >$(FUZZ_BUILD)/fuzz_$*.log 2>&1; then \
	    tail -40 $(FUZZ_BUILD)/fuzz_$*.log; exit 1; fi
	@grep -E '^stat::number_of_executed_units' $(FUZZ_BUILD)/fuzz_$*.log

deps:
	sh scripts/deps

# The include graph of src/ against DESIGN.md's layers: no lower module
# includes a higher one's header, no cycle (known debt: its allow-list).
deps-graph:
	/usr/bin/python3 scripts/deps-graph
	/usr/bin/python3 scripts/func-length

# System tests run in TEST_JOBS pytest-xdist workers, one test file per
# worker at a time: most of their time is spent waiting on relays, not on
# the CPU.  Each worker has its own slice of ports (conftest.free_port).
# The integrity matrix needs the test build's hooks: make integrity.
TEST_JOBS	?= 3
system: all
	cd tests/system && RELAYD_BUILD=$(abspath $(BUILD)) \
	    /usr/bin/python3 -m pytest -q -x --timeout-method=signal \
	    -n $(TEST_JOBS) --dist loadfile \
	    --ignore=test_integrity_matrix.py $(PYTEST_ARGS) .

# Byte-exact PUTs through every input path into every place a route
# stores, with a store worker slowed to lag the input (build-test).
integrity:
	$(MAKE) BUILD=build-test TEST_HOOKS=1 all
	cd tests/system && RELAYD_BUILD=$(abspath build-test) \
	    /usr/bin/python3 -m pytest -q -x --timeout-method=signal \
	    test_integrity_matrix.py

# The store worker and the loop under ThreadSanitizer: the stream and
# store unit tests, the session unit test (a real store worker), and
# storing cells of the integrity matrix.
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
tsan:
	$(MAKE) BUILD=build-tsan TSAN=1 TEST_HOOKS=1 all build-tsan/test_store \
	    build-tsan/test_stream build-tsan/test_session
	$(TSAN_ENV) build-tsan/test_stream
	$(TSAN_ENV) build-tsan/test_store
	$(TSAN_ENV) build-tsan/test_session
	cd tests/system && $(TSAN_ENV) RELAYD_BUILD=$(abspath build-tsan) \
	    RELAYD_MATRIX_MAX_SIZE=8388608 \
	    /usr/bin/python3 -m pytest -q -x --timeout-method=signal \
	    test_integrity_matrix.py -k "depth0 or fanout"

# The 10-hop PUT and the stall scenario with every relayd under valgrind.
valgrind-system: all
	cd tests/system && RELAYD_BUILD=$(abspath $(BUILD)) RELAYD_VALGRIND=1 \
	    /usr/bin/python3 -m pytest -q -x --timeout-method=signal \
	    test_chain_10hops.py \
	    test_upstream_lost_after_complete.py::test_upstream_killed_after_complete

# The whole suite: deps, a warning-free build, unit tests (also under
# valgrind), short fuzz runs, system tests, then the unit and system tests
# again on an ASan+UBSan build.
check: deps
	$(MAKE) all unit
	$(MAKE) lint
	$(MAKE) valgrind
	$(MAKE) fuzz FUZZ_SECONDS=5
	$(MAKE) system
	$(MAKE) integrity
	$(MAKE) tsan
	$(MAKE) valgrind-system
	$(MAKE) soak SOAK_ARGS="--count 150"
	$(MAKE) BUILD=build-san SAN=1 all unit
	$(MAKE) BUILD=build-san SAN=1 system

demo: deps all
	sh scripts/demo

# Side by side with socat, nginx and HAProxy chains, then the scale run.
bench: deps all
	sh scripts/deps-bench
	/usr/bin/python3 scripts/bench $(BENCH_ARGS)
	/usr/bin/python3 scripts/bench-scale $(BENCH_SCALE_ARGS)

bench-scale: deps all
	/usr/bin/python3 scripts/bench-scale $(BENCH_SCALE_ARGS)

soak: deps all
	/usr/bin/python3 scripts/soak $(SOAK_ARGS)

# Installed files.  The units get the binaries' real paths at install time;
# uninstall removes exactly the files install puts (directories shared
# with other packages stay).
SBINDIR		 = $(PREFIX)/sbin
BINDIR		 = $(PREFIX)/bin
UNITDIR		 = $(PREFIX)/lib/systemd/system
SYSUSERSDIR	 = $(PREFIX)/lib/sysusers.d
TMPFILESDIR	 = $(PREFIX)/lib/tmpfiles.d
MANDIR		 = $(PREFIX)/share/man
DOCDIR		 = $(PREFIX)/share/doc/relayd
DATADIR		 = $(PREFIX)/share/relayd
MANPAGES	 = $(wildcard man/*.[1-9])
EXAMPLES	 = $(wildcard conf/examples/*)
UNITS		 = relayd.service relayd.socket

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)/examples \
	    $(DESTDIR)$(DATADIR)
	install -m 755 $(BUILD)/relayd $(DESTDIR)$(SBINDIR)/relayd
	install -m 755 $(BUILD)/relayctl $(DESTDIR)$(BINDIR)/relayctl
	@set -e; for u in $(UNITS); do \
	    echo "sed systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u"; \
	    sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
	        systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp; \
	    chmod 644 $(DESTDIR)$(UNITDIR)/$$u.tmp; \
	    mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u; done
	install -m 644 systemd/relayd.sysusers \
	    $(DESTDIR)$(SYSUSERSDIR)/relayd.conf
	install -m 644 systemd/relayd.tmpfiles \
	    $(DESTDIR)$(TMPFILESDIR)/relayd.conf
	@set -e; for m in $(MANPAGES); do s=$${m##*.}; \
	    install -d $(DESTDIR)$(MANDIR)/man$$s; \
	    echo "install $$m $(DESTDIR)$(MANDIR)/man$$s"; \
	    install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	install -m 644 conf/relayd.conf $(DESTDIR)$(DOCDIR)/relayd.conf.example
	install -m 644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/
	install -m 755 scripts/gen-certs $(DESTDIR)$(DATADIR)/gen-certs

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/relayd $(DESTDIR)$(BINDIR)/relayctl
	rm -f $(UNITS:%=$(DESTDIR)$(UNITDIR)/%)
	rm -f $(DESTDIR)$(SYSUSERSDIR)/relayd.conf \
	    $(DESTDIR)$(TMPFILESDIR)/relayd.conf
	@set -e; for m in $(MANPAGES); do s=$${m##*.}; \
	    echo "rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}"; \
	    rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; done
	rm -f $(DESTDIR)$(DOCDIR)/relayd.conf.example
	rm -f $(EXAMPLES:conf/examples/%=$(DESTDIR)$(DOCDIR)/examples/%)
	rm -f $(DESTDIR)$(DATADIR)/gen-certs
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(DATADIR) 2>/dev/null

# Static checks.  The include graph (deps-graph).  Every man page under
# mandoc's lint.  The units,
# installed into a scratch directory, under systemd-analyze verify: the
# scratch directory is the PREFIX, not a DESTDIR, so that the binaries the
# units name exist; any warning about the units fails; where man(1) is
# there, MANPATH points at the installed pages so that Documentation= is
# checked too.  The service's hardening: its exposure by
# `systemd-analyze security` must be at most LINT_MAX_EXPOSURE.
LINT_MAX_EXPOSURE = 2.0

lint: all deps-graph
	@set -e; for m in $(MANPAGES); do echo "mandoc -Tlint $$m"; \
	    mandoc -Tlint -Wwarning $$m; done
	@set -e; tmp=$$(mktemp -d /tmp/relayd-lint.XXXXXX); \
	trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) -s install DESTDIR= PREFIX=$$tmp/usr >/dev/null; \
	u=$$tmp/usr/lib/systemd/system; man=--man=no; \
	if command -v man >/dev/null 2>&1; then man=--man=yes; fi; \
	echo "systemd-analyze verify $(UNITS)"; \
	MANPATH=$$tmp/usr/share/man systemd-analyze verify $$man \
	    $(UNITS:%=$$u/%) >$$tmp/verify.txt 2>&1 || \
	    { cat $$tmp/verify.txt; exit 1; }; \
	cat $$tmp/verify.txt; \
	if grep -q -e "$$u/" -e '^relayd\.[a-z]*:' $$tmp/verify.txt; then \
	    echo "lint: systemd-analyze verify warns about the units"; \
	    exit 1; fi; \
	systemd-analyze security --offline=true $$u/relayd.service \
	    >$$tmp/security.txt 2>&1 || { cat $$tmp/security.txt; exit 1; }; \
	line=$$(grep 'Overall exposure level' $$tmp/security.txt) || \
	    { cat $$tmp/security.txt; \
	      echo "lint: no exposure level in the output"; exit 1; }; \
	echo "$$line"; \
	lvl=$$(echo "$$line" | sed -n 's/.*: *\([0-9][0-9.]*\) .*/\1/p'); \
	awk -v l="$$lvl" -v m=$(LINT_MAX_EXPOSURE) 'BEGIN { \
	    if (l == "" || l + 0 > m + 0) { \
	        printf "lint: exposure %s is above %s\n", l, m; exit 1 } }'

clean:
	rm -rf build build-san build-test build-tsan $(FUZZ_BUILD)

.PHONY: all unit valgrind valgrind-system fuzz deps system integrity tsan check demo bench bench-scale soak clean \
	install uninstall lint deps-graph
