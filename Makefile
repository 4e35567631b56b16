# pgward build. `make` builds build/pgwardd and build/pgwardctl; `make check` installs what is
# missing (scripts/deps.sh) and runs every test; `make check SAN=1` does it under ASan+UBSan;
# `make bench` runs the benchmark; `make demo` shows the main job working.
# `make install` (PREFIX, DESTDIR) installs pgwardd, pgwardctl, the systemd unit, man pages and
# completion (scripts/install.sh); `make deb` builds the Debian package from the same tree;
# `make image` the OCI image (docs/deploy.md).

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
BPF_TOOL_SRCS := $(wildcard tests/bpf/*.c)
BPF_TOOL_BINS := $(BPF_TOOL_SRCS:tests/bpf/%.c=$(BUILD)/tests/%)

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

# The eBPF tests' drivers: C programs over the library, run by tests/bpf/*.sh.
$(BUILD)/tests/%: tests/bpf/%.c $(BUILD)/libpgward.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_OURS) $(CFLAGS) -o $@ $< $(BUILD)/libpgward.a $(LDFLAGS_OURS) $(LIBS)

tests: $(UNIT_BINS) $(TOOL_BINS) $(BPF_TOOL_BINS)

deps:
	@scripts/deps.sh --if-missing

check: deps
	$(MAKE) all tests
	BUILD=$(BUILD) SAN=$(SAN) tests/run.sh

bench: deps all
	BUILD=$(BUILD) scripts/bench.sh

demo: deps all
	BUILD=$(BUILD) scripts/demo.sh

PREFIX        ?= /usr/local
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
INSTALL_ENV = BUILD=$(BUILD) DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) SYSCONFDIR=$(SYSCONFDIR) \
	LOCALSTATEDIR=$(LOCALSTATEDIR)
install: all
	$(INSTALL_ENV) scripts/install.sh

# PURGE=1 also removes /etc/pgward, /var/lib/pgward, /var/log/pgward and the group pgward
uninstall:
	$(INSTALL_ENV) PURGE=$(PURGE) scripts/install.sh --uninstall

deb: all
	BUILD=$(BUILD) scripts/deb.sh

# the OCI image localhost/pgward:<version> and $(BUILD)/pgward-image.oci.tar: a debootstrap'd
# Debian 12 with the .deb installed (root; docs/deploy.md)
image: deb
	BUILD=$(BUILD) scripts/image.sh $(BUILD)/pgward_$$($(BUILD)/pgwardd --version | \
		awk '{print $$2}')_$$(dpkg --print-architecture).deb

FORMATTED := $(wildcard user/*.c include/pgward/*.h tests/unit/*.c tests/unit/*.h \
	tests/integration/*.c tests/bpf/*.c bpf/*.c bpf/*.h tests/fuzz/*.c tests/fuzz/*.h)
format:
	clang-format -i $(FORMATTED)

# what make check's format group runs: every C file as .clang-format wants it
format-check:
	clang-format --dry-run --Werror $(FORMATTED)

# ---- fuzzing (libFuzzer) ------------------------------------------------------------------------
# `make fuzz-build` builds every tests/fuzz/fuzz_<name>.c into build/fuzz/fuzz_<name>: the
# library (LIB_SRCS) compiled again with clang under ASan+UBSan and libFuzzer's coverage, its
# file-system, socket and kill calls renamed (objcopy) into the sandbox of tests/fuzz/fuzzlib.c.
# `make fuzz` runs each harness of FUZZ_TARGETS (default: all) for FUZZ_SECONDS from its corpus
# in build/fuzz/corpus/<name>/; crashes land in build/fuzz/crashes/<name>/. tests/fuzz/run.sh
# is the bounded run for `make check`. See tests/fuzz/README.md.
FUZZ_CC       := clang
FUZZ_BUILD    := build/fuzz
FUZZ_SECONDS  ?= 300
FUZZ_SRCS     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES    := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
FUZZ_TARGETS  ?= $(FUZZ_NAMES)
FUZZ_BINS     := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIB_OBJS := $(LIB_SRCS:user/%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_CFLAGS   := -std=gnu11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -Iinclude -I$(FUZZ_BUILD) -I$(BUILD) -pthread -MMD -MP
FUZZ_SANDBOXED := open open64 openat creat fopen fopen64 freopen setmntent access faccessat \
	euidaccess stat lstat fstatat statfs opendir readlink realpath mkdir rmdir unlink rename \
	chmod chown truncate mount name_to_handle_at open_by_handle_at socket connect bind \
	getaddrinfo kill

$(FUZZ_BUILD)/obj/loader.o: $(BUILD)/pgward.skel.h

$(FUZZ_BUILD)/obj/%.o: user/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
	objcopy $(foreach s,$(FUZZ_SANDBOXED),--redefine-sym $(s)=pwfuzz_sb_$(s)) $@ || { rm -f $@; exit 1; }

# the harnesses' helpers and the sandbox: no coverage, not renamed
$(FUZZ_BUILD)/harness/fuzzlib.o: tests/fuzz/fuzzlib.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wall -Wextra -Werror -c $< -o $@

$(FUZZ_BUILD)/libpgward.a: $(FUZZ_LIB_OBJS) $(FUZZ_BUILD)/harness/fuzzlib.o
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libpgward.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Wall -Wextra -Werror -MF $@.d -o $@ $< \
		$(FUZZ_BUILD)/libpgward.a $(LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(MAKE) fuzz-build
	FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_TARGETS='$(FUZZ_TARGETS)' tests/fuzz/fuzz.sh

-include $(wildcard $(FUZZ_BUILD)/obj/*.d $(FUZZ_BUILD)/harness/*.d $(FUZZ_BUILD)/*.d)
# ---- end of fuzzing ------------------------------------------------------------------------------

clean:
	rm -rf build

.PHONY: all tests deps check bench demo install uninstall deb image format format-check clean fuzz fuzz-build
-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/tests/*.d)
