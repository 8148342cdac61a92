# allocprof build. `make` builds ./allocprof; `make demo` and `make test` also install what a
# fresh Debian 12 machine is missing (scripts/install-deps.sh). V=1 shows full commands.

OUTPUT := build
CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= gcc
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
PROTOC_C ?= protoc-c

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

VMLINUX := vmlinux/vmlinux.h
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))
USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUTPUT)/%.o,$(USER_SRCS)) $(OUTPUT)/profile.pb-c.o
LIB_PKGS := libbpf libelf libdw zlib libprotobuf-c

WARN := -Wall -Wextra -Werror -Wno-missing-field-initializers
CFLAGS ?= -O2 -g
ALL_CFLAGS := $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -I$(OUTPUT) -Ibpf -Iuser -MMD -MP
LDLIBS := $(shell pkg-config --libs $(LIB_PKGS) 2>/dev/null || echo -lbpf -lelf -ldw -lz -lprotobuf-c) -lm -lstdc++
# (BPF_PROG and BPF_KPROBE declare every argument, used or not.)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) $(WARN) -Wno-unused-parameter -Ivmlinux \
	-Ibpf -MMD -MP

.PHONY: all clean deps test-deps demo test test-build bench format check-root install uninstall
.DELETE_ON_ERROR:
# Keep the BPF objects, skeletons and the stack-walk targets' libraries between builds (they
# are intermediate files to make). Named, not a bare .SECONDARY: that makes every target
# secondary, and a deleted user object is then never rebuilt while ./allocprof is newer.
.SECONDARY: $(BPF_OBJS) $(SKELS) $(foreach v,fp nofp nocfi,$(OUTPUT)/tests/libunwdeep-$(v).so)

all: allocprof $(OUTPUT)/allocprof.1

$(OUTPUT):
	$(Q)mkdir -p $@

# vmlinux.h from the running kernel's BTF when it has one, the committed x86_64 copy otherwise.
$(VMLINUX):
	$(call msg,GEN,$@)
	$(Q)scripts/gen-vmlinux.sh $@

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c $(VMLINUX) | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MF $(@:.o=.d) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

$(OUTPUT)/profile.pb-c.c $(OUTPUT)/profile.pb-c.h: user/proto/profile.proto | $(OUTPUT)
	$(call msg,PROTOC,$<)
	$(Q)$(PROTOC_C) --proto_path=user/proto --c_out=$(OUTPUT) $<

$(OUTPUT)/profile.pb-c.o: $(OUTPUT)/profile.pb-c.c
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Wall -I$(OUTPUT) -c $< -o $@

# flame.js goes into every SVG as one string (scripts/embed-js.py). Named here, not left to the
# .d files: the header must exist before flamesvg.o's first compile, when none says so yet.
$(OUTPUT)/flame_js.h: user/flame.js scripts/embed-js.py | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)scripts/embed-js.py $< flame_js > $@

$(OUTPUT)/flamesvg.o: $(OUTPUT)/flame_js.h

# Userspace objects may include any skeleton or the generated protobuf header.
$(OUTPUT)/%.o: user/%.c $(SKELS) $(OUTPUT)/profile.pb-c.h | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

allocprof: $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

-include $(wildcard $(OUTPUT)/*.d)

# The man page is made from the --help texts (scripts/gen-man.py), so the two say the same.
$(OUTPUT)/allocprof.1: allocprof scripts/gen-man.py | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)scripts/gen-man.py ./allocprof > $@

# ---- install, uninstall ---------------------------------------------------------------------
# The usual variables: `make install DESTDIR=pkg PREFIX=/usr`. The units go where the system's
# own are looked up under PREFIX (/usr/local/lib/systemd/system is searched by systemd too); the
# cron line is an example, not put in /etc: a timer and a cron job at once would overlap.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
MAN1DIR ?= $(MANDIR)/man1
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/allocprof
INSTALL ?= install
UNITS := allocprof.service allocprof.timer allocprof-periodic.service
INSTALLED := $(DESTDIR)$(BINDIR)/allocprof $(DESTDIR)$(MAN1DIR)/allocprof.1 \
	$(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) $(DESTDIR)$(DOCDIR)/allocprof.cron

# The units and the cron line name /usr/local/bin/allocprof: the installed binary's path
# replaces it, and the man page's FILES are this PREFIX's.
install: allocprof $(OUTPUT)/allocprof.1
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)mkdir -p $(OUTPUT)/install
	$(Q)scripts/gen-man.py --prefix $(PREFIX) ./allocprof > $(OUTPUT)/install/allocprof.1
	$(Q)for f in $(UNITS) allocprof.cron; do \
		sed 's|/usr/local/bin/allocprof|$(BINDIR)/allocprof|g' contrib/$$f \
			> $(OUTPUT)/install/$$f || exit 1; \
	done
	$(Q)$(INSTALL) -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(MAN1DIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(DOCDIR)
	$(Q)$(INSTALL) -m 0755 allocprof $(DESTDIR)$(BINDIR)/allocprof
	$(Q)$(INSTALL) -m 0644 $(OUTPUT)/install/allocprof.1 $(DESTDIR)$(MAN1DIR)/allocprof.1
	$(Q)$(INSTALL) -m 0644 $(addprefix $(OUTPUT)/install/,$(UNITS)) $(DESTDIR)$(UNITDIR)
	$(Q)$(INSTALL) -m 0644 $(OUTPUT)/install/allocprof.cron $(DESTDIR)$(DOCDIR)/allocprof.cron

# Exactly what install put there; of the directories only the one that is allocprof's own.
uninstall:
	$(call msg,UNINSTALL,$(DESTDIR)$(PREFIX))
	$(Q)rm -f $(INSTALLED)
	$(Q)if [ -d $(DESTDIR)$(DOCDIR) ]; then rmdir $(DESTDIR)$(DOCDIR); fi

# ---- set-up, demo, tests, benchmark ---------------------------------------------------------

deps:
	$(Q)scripts/install-deps.sh

test-deps:
	$(Q)scripts/install-deps.sh --test

check-root:
	$(Q)[ "$$(id -u)" = 0 ] || { echo "make: run as root (BPF and uprobes need it)" >&2; exit 1; }

TARGETS_DIR := $(OUTPUT)/tests
$(TARGETS_DIR):
	$(Q)mkdir -p $@

TEST_CFLAGS := -O1 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -Wall -Wextra -Werror \
	-pthread -Itests
$(TARGETS_DIR)/%: tests/targets/%.c  $(wildcard tests/targets/*.h) | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CFLAGS) $< -o $@ -lm

$(TARGETS_DIR)/%: tests/targets/%.cc  $(wildcard tests/targets/*.h) | $(TARGETS_DIR)
	$(call msg,CXX,$@)
	$(Q)g++ $(TEST_CFLAGS) $< -o $@

$(TARGETS_DIR)/%-static: tests/targets/%.c  $(wildcard tests/targets/*.h) | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CFLAGS) -static $< -o $@ -lm

# The benchmark without frame pointers: what walking its stacks with unwind tables costs.
$(TARGETS_DIR)/bench-nofp: tests/targets/bench.c $(wildcard tests/targets/*.h) | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) -O2 -fomit-frame-pointer -Wall -Wextra -Werror -pthread -Itests $< -o $@

# No C library at all: the target of the "no recognisable allocator" tests.
$(TARGETS_DIR)/nomalloc: tests/targets/nomalloc.c | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) -O1 -nostdlib -static -fno-stack-protector $< -o $@

# A preloadable allocator written in assembly (its first instruction is the point).
$(TARGETS_DIR)/lib%.so: tests/targets/%.S | $(TARGETS_DIR)
	$(call msg,AS,$@)
	$(Q)$(CC) -shared -fPIC -nostdlib $< -o $@ -lc

# Stack-walk targets (tests/test_stacks.py): the same source with and without frame pointers,
# each program with its own library (found through $$ORIGIN); no call is a tail call in either.
UNW_FLAGS := -O2 -g -fno-optimize-sibling-calls -Wall -Wextra -Werror -pthread -Itests
UNW_FLAGS_fp := $(UNW_FLAGS) -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer
UNW_FLAGS_nofp := $(UNW_FLAGS) -fomit-frame-pointer
# Frame pointers and no unwind information at all (no -g either: it would add .debug_frame).
UNW_FLAGS_nocfi := $(filter-out -g,$(UNW_FLAGS_fp)) -fno-asynchronous-unwind-tables -fno-unwind-tables
UNW_DIR := tests/targets/unwind
$(TARGETS_DIR)/libunwdeep-%.so: $(UNW_DIR)/deeplib.c $(UNW_DIR)/deep.h | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(UNW_FLAGS_$*) -shared -fPIC $< -o $@
$(TARGETS_DIR)/unwind-deep-%: $(UNW_DIR)/deep.c $(UNW_DIR)/deep.h $(TARGETS_DIR)/libunwdeep-%.so
	$(call msg,CC,$@)
	$(Q)$(CC) $(UNW_FLAGS_$*) $< -o $@ -L$(TARGETS_DIR) -lunwdeep-$* -Wl,-rpath,'$$ORIGIN'
$(TARGETS_DIR)/unwind-tramp-%: $(UNW_DIR)/tramp.c tests/targets/wait_usr1.h | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(UNW_FLAGS_$*) $< -o $@
$(TARGETS_DIR)/unwind-garbage: $(UNW_DIR)/garbage.c $(UNW_DIR)/garbage.S | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(UNW_FLAGS_fp) $^ -o $@
$(TARGETS_DIR)/unwind-exec-%: $(UNW_DIR)/exec-%.c tests/targets/wait_usr1.h | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(UNW_FLAGS_nofp) $< -o $@
UNWIND_TARGETS := $(foreach v,fp nofp,$(TARGETS_DIR)/unwind-deep-$(v) $(TARGETS_DIR)/unwind-tramp-$(v)) \
	$(TARGETS_DIR)/unwind-deep-nocfi $(TARGETS_DIR)/unwind-garbage \
	$(TARGETS_DIR)/unwind-exec-a $(TARGETS_DIR)/unwind-exec-b

TEST_TARGETS := $(patsubst tests/targets/%.c,$(TARGETS_DIR)/%,$(wildcard tests/targets/*.c)) \
	$(patsubst tests/targets/%.cc,$(TARGETS_DIR)/%,$(wildcard tests/targets/*.cc)) \
	$(patsubst tests/targets/%.S,$(TARGETS_DIR)/lib%.so,$(wildcard tests/targets/*.S)) \
	$(TARGETS_DIR)/sites-static $(TARGETS_DIR)/bench-nofp $(UNWIND_TARGETS)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(TARGETS_DIR)/unit-%,$(wildcard tests/unit/*.c))

$(TARGETS_DIR)/unit-%: tests/unit/%.c $(filter-out $(OUTPUT)/main.o,$(USER_OBJS)) | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

# The benchmark's floor: allocprof's own resolution and attach code with a no-op program.
$(TARGETS_DIR)/apfloor: tests/bench/floor.c $(filter-out $(OUTPUT)/main.o,$(USER_OBJS)) | $(TARGETS_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

# ---- sanitizer build: the unit tests and a fuzz run of the parsers ---------------------------
# The same sources under ASan and UBSan, any report fatal (-fno-sanitize-recover): the unit
# binaries again as unit-asan-*, and tests/fuzz/fuzz.c, a bounded deterministic fuzz run of the
# pprof reader, the maps parser and the ELF reader. tests/run.py runs them with the others.
ASAN_DIR := $(OUTPUT)/asan
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_OBJS := $(patsubst user/%.c,$(ASAN_DIR)/%.o,$(filter-out user/main.c,$(USER_SRCS))) \
	$(ASAN_DIR)/profile.pb-c.o
ASAN_TESTS := $(patsubst tests/unit/%.c,$(TARGETS_DIR)/unit-asan-%,$(wildcard tests/unit/*.c)) \
	$(TARGETS_DIR)/unit-asan-fuzz

$(ASAN_DIR):
	$(Q)mkdir -p $@

$(ASAN_DIR)/profile.pb-c.o: $(OUTPUT)/profile.pb-c.c | $(ASAN_DIR)
	$(call msg,CC-ASAN,$@)
	$(Q)$(CC) $(CFLAGS) $(ASAN_FLAGS) -Wall -I$(OUTPUT) -c $< -o $@

$(ASAN_DIR)/flamesvg.o: $(OUTPUT)/flame_js.h

$(ASAN_DIR)/%.o: user/%.c $(SKELS) $(OUTPUT)/profile.pb-c.h | $(ASAN_DIR)
	$(call msg,CC-ASAN,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -c $< -o $@

# (-Itests/unit first: the harness's check.h, not user/check.h of `allocprof check`.)
$(TARGETS_DIR)/unit-asan-fuzz: tests/fuzz/fuzz.c $(ASAN_OBJS) | $(TARGETS_DIR)
	$(call msg,CC-ASAN,$@)
	$(Q)$(CC) -Itests/unit $(ALL_CFLAGS) $(ASAN_FLAGS) $^ $(LDLIBS) -o $@

$(TARGETS_DIR)/unit-asan-%: tests/unit/%.c $(ASAN_OBJS) | $(TARGETS_DIR)
	$(call msg,CC-ASAN,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) $^ $(LDLIBS) -o $@

-include $(wildcard $(ASAN_DIR)/*.d $(TARGETS_DIR)/unit-asan-*.d)

demo: deps check-root
	$(Q)$(MAKE) --no-print-directory allocprof $(TARGETS_DIR)/demo
	$(Q)scripts/demo.sh

# Everything the tests run, built (test-build: without installing or running anything).
test-build: allocprof $(OUTPUT)/allocprof.1 $(TEST_TARGETS) $(UNIT_TESTS) $(ASAN_TESTS)

test: test-deps check-root
	$(Q)$(MAKE) --no-print-directory test-build
	$(Q)tests/run.py

bench: test-deps check-root
	$(Q)$(MAKE) --no-print-directory allocprof $(TARGETS_DIR)/bench $(TARGETS_DIR)/bench-nofp \
		$(TARGETS_DIR)/apfloor
	$(Q)scripts/bench.sh

format:
	$(Q)clang-format -i bpf/*.c bpf/*.h user/*.c user/*.h tests/targets/*.c tests/targets/*.h \
		tests/targets/*.cc tests/unit/*.c tests/unit/*.h tests/bench/*.c

clean:
	$(call msg,CLEAN,)
	$(Q)rm -rf $(OUTPUT) allocprof $(VMLINUX)
