# pgward build. `make` builds build/pgwardd and build/pgwardctl; `make check` installs what is
# missing (scripts/deps.sh) and runs every test; `make check SAN=1` does it under ASan+UBSan;
# `make bench` runs the benchmark; `make demo` shows the main job working.

CC      ?= gcc
SAN     ?= 0
BUILD   ?= build
ifeq ($(SAN),1)
BUILD   := build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif

CFLAGS_OURS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 \
	-fstack-protector-strong -D_GNU_SOURCE -Iinclude -I$(BUILD) -pthread -MMD -MP $(SANFLAGS)
LDFLAGS_OURS := -pthread $(SANFLAGS)
LIBS := -lbpf -lelf -lz -lssl -lcrypto -ljansson -lpg_query -ljwt
BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' -e 's/s390x/s390/')

MAINS    := user/pgwardd.c user/pgwardctl.c
CTL_SRCS := $(wildcard user/ctl_*.c)
LIB_SRCS := $(filter-out $(MAINS) $(CTL_SRCS),$(wildcard user/*.c))
LIB_OBJS := $(LIB_SRCS:user/%.c=$(BUILD)/obj/%.o)
CTL_OBJS := $(CTL_SRCS:user/%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/integration/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/integration/%.c=$(BUILD)/tests/%)

all: $(BUILD)/pgwardd $(BUILD)/pgwardctl

# Kernel programs: clang -target bpf, CO-RE against vmlinux.h, embedded via a skeleton.
$(BUILD)/bpf/pgward.bpf.o: bpf/pgward.bpf.c include/pgward/abi.h vmlinux.h
	@mkdir -p $(dir $@)
	clang -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -I. -Iinclude -Wall -Werror -c $< -o $@

$(BUILD)/pgward.skel.h: $(BUILD)/bpf/pgward.bpf.o
	bpftool gen skeleton $< name pgward > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/loader.o: $(BUILD)/pgward.skel.h

$(BUILD)/obj/%.o: user/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OURS) $(CFLAGS) -c $< -o $@

$(BUILD)/libpgward.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/pgwardd: $(BUILD)/obj/pgwardd.o $(BUILD)/libpgward.a
	$(CC) $(LDFLAGS_OURS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/pgwardctl: $(BUILD)/obj/pgwardctl.o $(CTL_OBJS) $(BUILD)/libpgward.a
	$(CC) $(LDFLAGS_OURS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libpgward.a tests/unit/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OURS) $(CFLAGS) -o $@ $< $(BUILD)/libpgward.a $(LDFLAGS_OURS) $(LIBS)

# Integration helpers (libpq clients used by the tests).
$(BUILD)/tests/%: tests/integration/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OURS) $(CFLAGS) -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql) \
		-o $@ $< $(LDFLAGS_OURS) -lpq

tests: $(UNIT_BINS) $(TOOL_BINS)

deps:
	@scripts/deps.sh --if-missing

check: deps
	$(MAKE) all tests
	BUILD=$(BUILD) SAN=$(SAN) tests/run.sh

bench: deps all
	BUILD=$(BUILD) scripts/bench.sh

demo: deps all
	BUILD=$(BUILD) scripts/demo.sh

format:
	clang-format -i $(wildcard user/*.c include/pgward/*.h tests/unit/*.c tests/integration/*.c bpf/*.c bpf/*.h)

clean:
	rm -rf build

.PHONY: all tests deps check bench demo format clean
-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/tests/*.d)
