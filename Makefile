# Thin wrapper behind the README's two commands; the build itself is CMake.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)

.PHONY: run test build deps test-deps deb clean

# Installs what is missing, builds, and runs a collector plus an agent in the foreground.
run: deps
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=gcc
	cmake --build $(BUILD) -j$(JOBS) --target sluice-collector sluice-agent sluice
	packaging/run-local.sh $(BUILD)

# Installs what is missing, builds with gcc and with clang+ASan/UBSan, runs every test in both.
test: test-deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DSL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS)
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=gcc
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# Builds the Debian packages sluice-agent, sluice-collector and sluice-tools into dist/.
deb: deps
	packaging/build-debs.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=gcc
	cmake --build $(BUILD) -j$(JOBS)

deps:
	packaging/deps.sh

test-deps:
	packaging/deps.sh --test

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
