# kith — top-level entry points. Every target installs missing Debian packages first (scripts/deps.sh).
JOBS ?= $(shell nproc)
BUILD ?= build
PORT ?= 8080

.PHONY: all deps build run test test-fast asan fuzz bench clean format

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# Sets up, builds and runs kithd on the embedded store at http://127.0.0.1:$(PORT) with demo data.
run: build
	@bash scripts/run-demo.sh $(BUILD) $(PORT)

# The whole suite: release build + tests, then ASan+UBSan build + tests, then a short fuzz run.
test: build
	@bash scripts/test.sh

test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKITH_SANITIZE=ON -DKITH_WERROR=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DKITH_FUZZ=ON \
	  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" >/dev/null
	@cmake --build build-fuzz -j$(JOBS)

bench: build
	@KITH_BENCH=1 bash scripts/deps.sh
	@bash bench/run.sh $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
