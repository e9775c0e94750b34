# relayd: the single entry point.  make, make check, make demo, make bench,
# make fuzz, make install.

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	?= build
CC	?= cc
SAN	?=

PKGS	 = libevent libevent_pthreads libevent_openssl libssl libcrypto libconfig libsystemd jansson
CFLAGS	?= -O2 -g
# Reasons and node names are cut to fit wire limits on purpose, so
# snprintf truncation is not an error.
CFLAGS	+= -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	   -Wpointer-arith -Wmissing-prototypes -Wstrict-prototypes -pthread \
	   -Wno-format-truncation
ifeq ($(SAN),1)
CFLAGS	+= -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
endif
PKG_CFLAGS	 = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS	 = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS	 = $(shell pkg-config --libs cmocka 2>/dev/null)

# Daemon modules (everything but main).
MODS	 = log wire stream store config route tls session pipe peer control ctlproto
MOD_OBJS = $(MODS:%=$(BUILD)/%.o)

UNIT_TESTS = test_wire test_stream test_store test_config test_route test_ctlproto
UNIT_BINS  = $(UNIT_TESTS:%=$(BUILD)/%)

# Which modules each unit test links (kept small: a module is tested alone).
test_wire_MODS   = wire
test_stream_MODS = stream
test_store_MODS  = store stream log
test_config_MODS = config log
test_route_MODS  = route config log
test_ctlproto_MODS = ctlproto

all: $(BUILD)/relayd $(BUILD)/relayctl

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/%.o: src/%.c src/*.h | $(BUILD)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -c -o $@ $<

$(BUILD)/relayd: $(MOD_OBJS) $(BUILD)/relayd.o
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(PKG_LIBS)

$(BUILD)/relayctl: $(BUILD)/relayctl.o $(BUILD)/log.o
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/test_%.o: tests/unit/test_%.c src/*.h | $(BUILD)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -c -o $@ $<

.SECONDEXPANSION:
$(BUILD)/test_%: $(BUILD)/test_%.o $$(addprefix $(BUILD)/,$$(addsuffix .o,$$(test_$$*_MODS)))
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# The unit tests again under valgrind's memcheck: no errors, no leaks.
valgrind: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== valgrind $$t"; \
	    valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
	    --error-exitcode=9 $$t >/dev/null; done

# libFuzzer targets (clang 14), each run for FUZZ_SECONDS on its corpus.
FUZZ_SECONDS	?= 10
FUZZ_CC		 = clang
FUZZ_FLAGS	 = -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
FUZZ_BUILD	 = build-fuzz
fuzz_wire_SRCS	 = src/wire.c
fuzz_config_SRCS = src/config.c src/log.c
fuzz_ctl_SRCS	 = src/ctlproto.c
FUZZ_TARGETS	 = wire config ctl

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c src/*.c src/*.h
	mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $< $(fuzz_$*_SRCS) \
	    $(PKG_LIBS)

fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	    rm -rf $(FUZZ_BUILD)/new_$$t; mkdir -p $(FUZZ_BUILD)/new_$$t; \
	    if ! $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix=$(FUZZ_BUILD)/ -print_final_stats=1 \
	        $(FUZZ_BUILD)/new_$$t tests/fuzz/corpus/$$t \
	        >$(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
	        tail -40 $(FUZZ_BUILD)/fuzz_$$t.log; exit 1; fi; \
	    grep -E '^stat::number_of_executed_units' \
	        $(FUZZ_BUILD)/fuzz_$$t.log; done

deps:
	sh scripts/deps

system: all
	cd tests/system && RELAYD_BUILD=$(abspath $(BUILD)) \
	    /usr/bin/python3 -m pytest -q -x --timeout-method=signal $(PYTEST_ARGS) .

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
	$(MAKE) valgrind
	$(MAKE) fuzz FUZZ_SECONDS=5
	$(MAKE) system
	$(MAKE) valgrind-system
	$(MAKE) BUILD=build-san SAN=1 all unit
	$(MAKE) BUILD=build-san SAN=1 system

demo: deps all
	sh scripts/demo

bench: deps all
	/usr/bin/python3 scripts/bench $(BENCH_ARGS)

soak: deps all
	/usr/bin/python3 scripts/soak $(SOAK_ARGS)

clean:
	rm -rf build build-san $(FUZZ_BUILD)

.PHONY: all unit valgrind valgrind-system fuzz deps system check demo bench soak clean
