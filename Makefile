# memvirt: thin wrapper over CMake. `make run` (boots the built-in test guest on
# KVM: `memvirt run`), `make test`, `make bench`. RUN_ARGS overrides what run does.
DEBS      := build-essential cmake pkg-config libcmocka-dev liburcu-dev libjansson-dev
BUILD     := build
BUILD_SAN := build-san
BUILD_TSAN := build-tsan
# Concurrency tests that also run under ThreadSanitizer (ASan and TSan cannot share a build).
TSAN_TESTS := $(patsubst tests/%.c,%,$(wildcard tests/test_*_threads.c))
JOBS      := $(shell nproc)
RUN_ARGS  ?= run

MAKEFLAGS += --no-print-directory

.PHONY: all deps build run test bench clean

all: build

# Install missing Debian packages (non-interactive, as root; sudo when not root).
deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "memvirt: installing Debian packages:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/memvirt $(RUN_ARGS)

test: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DMV_SANITIZE=ON >/dev/null
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)
	@if [ -n "$(TSAN_TESTS)" ]; then \
	  cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DMV_TSAN=ON >/dev/null && \
	  cmake --build $(BUILD_TSAN) -j $(JOBS) --target $(TSAN_TESTS) && \
	  for t in $(TSAN_TESTS); do echo "== TSan: $$t"; \
	    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 MV_SRCDIR=$(CURDIR) ./$(BUILD_TSAN)/tests/$$t || exit 1; done; \
	fi

bench: build
	@for b in $(BUILD)/bench/bench_*; do echo "== $$b"; $$b || exit 1; done

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_TSAN)
