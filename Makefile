# agfs — one Makefile for the whole tree.
#   make                      build every program into $(BUILD)/
#   make check                build and run every test under prove
#   make check SANITIZE=address,undefined   the same under ASan/UBSan (own build dir)
#   make install PREFIX=/usr DESTDIR=...
#   make deb                  Debian packages into $(DEBDIR)/ (built in a temporary copy)
#   make demo | demo-clean | bench | fuzz | format | format-check | clean

PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
SBINDIR  ?= $(PREFIX)/sbin
MANDIR   ?= $(PREFIX)/share/man
DATADIR  ?= $(PREFIX)/share/agfs
CC       ?= cc
# The one version string of every program (--version); debian/changelog's
# upstream version must match it (tests/t5300-deb.sh checks).
VERSION  ?= 0.1.0
FUZZ_CC  ?= clang
SANITIZE ?=

PKGS := fuse3 libcrypto lmdb libarchive gpgme jansson libfsverity libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SANITIZE),)
BUILD ?= build
SAN_FLAGS :=
else
BUILD ?= build-san
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -Wstrict-prototypes \
        -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -D_FORTIFY_SOURCE=2 \
        -DFUSE_USE_VERSION=314 -DAGFS_VERSION='"$(VERSION)"' $(WARN) $(CFLAGS) $(SAN_FLAGS) -I. $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SAN_FLAGS)
LIBS := $(PKG_LIBS) -lpthread

# Quiet by default: `make V=1` shows the full commands.
ifeq ($(V),1)
Q :=
quiet = @true
else
Q := @
quiet = @echo "  $(1)	$@"
endif

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: deps all check unit install uninstall deb demo demo-clean bench fuzz clean format format-check

# Each program directory: main.c is the program, the rest is its library
# (so unit tests and fuzzers can call its parsers directly).
STORE_SRC    := $(wildcard store/*.c)
IMPORT_LIB   := $(filter-out importer/main.c,$(wildcard importer/*.c))
BUNDLE_LIB   := $(filter-out bundler/main.c,$(wildcard bundler/*.c))
FS_LIB       := $(filter-out fs/main.c,$(wildcard fs/*.c))
TOOLS_LIB    := $(filter-out tools/main.c,$(wildcard tools/*.c))
OCI_SRC      := $(wildcard oci/*.c)
SIG_SRC      := $(wildcard sig/*.c)
UNIT_SRC     := $(wildcard tests/unit/*.c)
HELPER_SRC   := $(wildcard tests/helpers/*.c)
HELPER_LIB   := $(wildcard tests/helpers/lib/*.c)
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz-*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBSTORE  := $(BUILD)/libagstore.a
LIBIMPORT := $(BUILD)/libagimport.a
LIBBUNDLE := $(BUILD)/libagbundle.a
LIBFS     := $(BUILD)/libagfs.a
LIBTOOLS  := $(BUILD)/libagtools.a
LIBOCI    := $(BUILD)/liboci.a
LIBSIG    := $(BUILD)/libagsig.a
ALL_LIBS  := $(LIBBUNDLE) $(LIBIMPORT) $(LIBFS) $(LIBTOOLS) $(LIBOCI) $(LIBSIG) $(LIBSTORE)

PROGS    := $(BUILD)/agimport $(BUILD)/agfs $(BUILD)/agstore $(BUILD)/agbundle
UNITS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
HELPERS  := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(HELPER_SRC))
REPLAYS  := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/replay/%,$(FUZZ_SRC))
FUZZERS  := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))

all: $(PROGS) $(HELPERS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(call quiet,CC)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBSTORE): $(call obj,$(STORE_SRC))
$(LIBIMPORT): $(call obj,$(IMPORT_LIB))
$(LIBBUNDLE): $(call obj,$(BUNDLE_LIB))
$(LIBFS): $(call obj,$(FS_LIB))
$(LIBTOOLS): $(call obj,$(TOOLS_LIB))
$(LIBOCI): $(call obj,$(OCI_SRC))
$(LIBSIG): $(call obj,$(SIG_SRC))
$(ALL_LIBS):
	@mkdir -p $(dir $@)
	$(call quiet,AR)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/agimport: $(call obj,importer/main.c) $(LIBIMPORT) $(LIBOCI) $(LIBSIG) $(LIBSTORE)
$(BUILD)/agbundle: $(call obj,bundler/main.c) $(LIBBUNDLE) $(LIBIMPORT) $(LIBSIG) $(LIBSTORE)
$(BUILD)/agfs: $(call obj,fs/main.c) $(LIBFS) $(LIBSIG) $(LIBSTORE)
$(BUILD)/agstore: $(call obj,tools/main.c) $(LIBTOOLS) $(LIBOCI) $(LIBIMPORT) $(LIBSIG) $(LIBSTORE)
$(PROGS):
	$(call quiet,LD)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests, helpers and fuzz targets link only the library their name
# prefix names (store-, import-, fs-, tools-, sig-), so one area's work in progress
# never breaks another's build.
define area_rules
$(BUILD)/tests/unit/$(1)-%: $(BUILD)/obj/tests/unit/$(1)-%.o $(2)
	@mkdir -p $$(dir $$@)
	$$(call quiet,LD)
	$$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS)
$(BUILD)/tests/replay/fuzz-$(1)-%: $(BUILD)/obj/tests/fuzz/fuzz-$(1)-%.o $(BUILD)/obj/tests/fuzz/replay.o $(2)
	@mkdir -p $$(dir $$@)
	$$(call quiet,LD)
	$$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(eval $(call area_rules,store,$(LIBSTORE)))
$(eval $(call area_rules,import,$(LIBIMPORT) $(LIBSIG) $(LIBSTORE)))
$(eval $(call area_rules,bundle,$(LIBBUNDLE) $(LIBIMPORT) $(LIBSIG) $(LIBSTORE)))
$(eval $(call area_rules,fs,$(LIBFS) $(LIBSIG) $(LIBSTORE)))
$(eval $(call area_rules,tools,$(LIBTOOLS) $(LIBIMPORT) $(LIBSIG) $(LIBSTORE)))
$(eval $(call area_rules,oci,$(LIBOCI) $(LIBSTORE)))
$(eval $(call area_rules,sig,$(LIBSIG) $(LIBSTORE)))

# Test helper programs (fixture generators, mmap reader, ...): store library only,
# and the code they share (tests/helpers/lib/).
$(BUILD)/tests/helpers/%: $(BUILD)/obj/tests/helpers/%.o $(call obj,$(HELPER_LIB)) $(LIBSTORE)
	@mkdir -p $(dir $@)
	$(call quiet,LD)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Fuzz targets: replayed over their saved corpus by `make check` (any compiler),
# run for real with libFuzzer by `make fuzz` (clang).  The saved corpus is
# read, not written; a crash input lands in build-fuzz/ to be fixed and then
# saved under tests/fuzz/corpus/ so make check replays it.
FUZZ_BUILD := build-fuzz
FUZZ_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
$(FUZZ_BUILD)/lib.stamp: $(STORE_SRC) $(IMPORT_LIB) $(FS_LIB) $(TOOLS_LIB) $(SIG_SRC)
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SAN_FLAGS="$(FUZZ_FLAGS)" \
	    $(FUZZ_BUILD)/libagimport.a $(FUZZ_BUILD)/libagfs.a $(FUZZ_BUILD)/libagtools.a $(FUZZ_BUILD)/libagsig.a $(FUZZ_BUILD)/libagstore.a
	touch $@
$(FUZZ_BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_BUILD)/lib.stamp
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(ALL_CFLAGS) -Wno-error $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_BUILD)/libagimport.a $(FUZZ_BUILD)/libagfs.a $(FUZZ_BUILD)/libagtools.a $(FUZZ_BUILD)/libagsig.a $(FUZZ_BUILD)/libagstore.a $(LIBS)

FUZZ_SECONDS ?= 60
fuzz: $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/fuzz/%,$(FUZZ_SRC))
	@for f in $^; do n=$$(basename $$f); mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
	    echo "== $$n ($(FUZZ_SECONDS)s; new inputs in $(FUZZ_BUILD)/corpus/$$n)"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -artifact_prefix=$(FUZZ_BUILD)/ \
	        $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n || exit 1; done

unit: $(UNITS) $(REPLAYS)

# Installs missing Debian packages (as root) and the pinned test client; set
# AGFS_NO_DEPS=1 to skip.
deps:
	@[ -n "$(AGFS_NO_DEPS)" ] || ./contrib/install-deps.sh --tests

check: deps
	$(MAKE) all unit
	AGFS_BUILD=$(CURDIR)/$(BUILD) prove -f $(PROVE_FLAGS) $(UNITS) tests/t[0-9]*.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(BUILD)/agimport $(BUILD)/agstore $(BUILD)/agbundle $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BUILD)/agfs $(DESTDIR)$(SBINDIR)/
	install -m 0755 fs/mount.agfs $(DESTDIR)$(SBINDIR)/mount.agfs
	ln -sf mount.agfs $(DESTDIR)$(SBINDIR)/mount.fuse.agfs
	install -m 0644 $(wildcard doc/*.8) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(wildcard doc/*.1) $(DESTDIR)$(MANDIR)/man1/
	install -d $(DESTDIR)$(DATADIR)
	cp -R contrib $(DESTDIR)$(DATADIR)/
	sed -i 's|/usr/sbin/agfs|$(SBINDIR)/agfs|' $(DESTDIR)$(DATADIR)/contrib/systemd/agfs.service

# Debian packages (debian/): dpkg-buildpackage in a temporary copy of the
# tracked files, so the source tree gets no debian/agfs/, stamps or ../*.deb;
# the .deb, .buildinfo and .changes land in $(DEBDIR).
DEBDIR ?= $(BUILD)/deb
deb:
	@command -v dpkg-buildpackage >/dev/null || { echo "make deb: needs dpkg-buildpackage and debhelper (contrib/install-deps.sh installs them)" >&2; exit 1; }
	@set -e; tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/agfs-deb.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	    mkdir -p "$$tmp/agfs-$(VERSION)" "$(DEBDIR)"; \
	    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	        git ls-files -z | xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh | \
	            tar --null -T - -cf - | tar -xf - -C "$$tmp/agfs-$(VERSION)"; \
	    else \
	        tar --exclude='./build*' --exclude=./demo --exclude=./node_modules -cf - . | tar -xf - -C "$$tmp/agfs-$(VERSION)"; \
	    fi; \
	    (cd "$$tmp/agfs-$(VERSION)" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	        dpkg-buildpackage -us -uc -b $(DEB_FLAGS)); \
	    cp "$$tmp"/*.deb "$$tmp"/*.buildinfo "$$tmp"/*.changes "$(DEBDIR)/"; \
	    ls "$(DEBDIR)"/*.deb

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/agimport $(DESTDIR)$(BINDIR)/agstore $(DESTDIR)$(BINDIR)/agbundle \
	      $(DESTDIR)$(SBINDIR)/agfs \
	      $(DESTDIR)$(SBINDIR)/mount.agfs $(DESTDIR)$(SBINDIR)/mount.fuse.agfs
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(wildcard doc/*.8)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(wildcard doc/*.1)))
	rm -rf $(DESTDIR)$(DATADIR)

demo:
	@[ -n "$(AGFS_NO_DEPS)" ] || ./contrib/install-deps.sh
	$(MAKE) all
	AGFS_BUILD=$(CURDIR)/$(BUILD) ./contrib/demo.sh

demo-clean:
	AGFS_BUILD=$(CURDIR)/$(BUILD) ./contrib/demo.sh clean

# make bench [BENCH_QUICK=1] [BENCH_ROUNDS=N] [BENCH_ONLY="fs import"] ...: bench/lib.sh
bench: all $(HELPERS)
	@[ -n "$(AGFS_NO_DEPS)" ] || ./contrib/install-deps.sh --bench
	AGFS_BUILD=$(CURDIR)/$(BUILD) ./bench/run.sh

FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
