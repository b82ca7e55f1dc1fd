#!/usr/bin/env bash
# Installs the Debian 12 packages Sluice needs that this machine lacks, and nothing else.
#   packaging/deps.sh          what building and running needs
#   packaging/deps.sh --test   plus what the test suite needs (peers, sanitizers, fuzzing)
set -euo pipefail

build_pkgs=(cmake make gcc pkg-config libev-dev libfyaml-dev zlib1g-dev libsystemd-dev libpq-dev
            libdeflate-dev libisal-dev curl dpkg-dev file)
test_pkgs=(clang libclang-rt-14-dev libcmocka-dev python3 python3-kafka groff-base
           python3-confluent-kafka kcat lintian systemd init-system-helpers postgresql
           postgresql-client util-linux systemd-journal-remote)

want=("${build_pkgs[@]}")
case "${1:-}" in
    --test) want+=("${test_pkgs[@]}") ;;
    "") ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
