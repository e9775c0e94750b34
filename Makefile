# relayd: the single entry point.  make, make check, make demo, make bench,
# make fuzz, make install.

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	?= build
CC	?= cc
SAN	?=

PKGS	 = libevent libevent_pthreads libssl libcrypto libconfig libsystemd jansson
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
MODS	 = log wire stream store config route session pipe peer control
MOD_OBJS = $(MODS:%=$(BUILD)/%.o)

UNIT_TESTS = test_wire test_stream test_store test_config test_route
UNIT_BINS  = $(UNIT_TESTS:%=$(BUILD)/%)

# Which modules each unit test links (kept small: a module is tested alone).
test_wire_MODS   = wire
test_stream_MODS = stream
test_store_MODS  = store stream log
test_config_MODS = config log
test_route_MODS  = route config log

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

deps:
	sh scripts/deps

system: all
	cd tests/system && RELAYD_BUILD=$(abspath $(BUILD)) \
	    /usr/bin/python3 -m pytest -q -x --timeout-method=signal $(PYTEST_ARGS) .

# The whole suite: deps, a warning-free build, unit and system tests, then
# the same again on an ASan+UBSan build.
check: deps
	$(MAKE) all unit
	$(MAKE) system
	$(MAKE) BUILD=build-san SAN=1 all unit
	$(MAKE) BUILD=build-san SAN=1 system

demo: deps all
	sh scripts/demo

bench: deps all
	/usr/bin/python3 scripts/bench $(BENCH_ARGS)

clean:
	rm -rf build build-san build-fuzz

.PHONY: all unit deps system check demo clean
