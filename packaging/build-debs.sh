#!/usr/bin/env bash
# Builds the Debian packages sluice-agent, sluice-collector and sluice-tools from this tree:
# a release build with Debian's hardening flags (dpkg-buildflags) in its own build folder,
# then CPack DEB. Needs what `packaging/deps.sh` installs (with dpkg-dev).
#   packaging/build-debs.sh [OUT_DIR]      (default ./dist; the build goes to ./build-deb)
# Environment: SL_DEB_BUILD (build folder), JOBS (parallel jobs, default nproc).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$top/dist}" && cd "${1:-$top/dist}" && pwd)
build=${SL_DEB_BUILD:-$top/build-deb}
jobs=${JOBS:-$(nproc)}

# Debian's flags: -O2, stack protector, _FORTIFY_SOURCE, relro/now, PIE by default.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cflags="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)"
ldflags=$(dpkg-buildflags --get LDFLAGS)

cmake -S "$top" -B "$build" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBUILD_TESTING=OFF -DSL_SANITIZE=OFF -DCMAKE_C_FLAGS="$cflags" \
    -DCMAKE_EXE_LINKER_FLAGS="$ldflags"
cmake --build "$build" -j"$jobs" --target sluice-agent sluice-collector sluice
rm -f "$out"/sluice-*.deb
cpack --config "$build/CPackConfig.cmake" -B "$out"
rm -rf "$out/_CPack_Packages"
ls -l "$out"/*.deb
