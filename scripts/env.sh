# Sourced by scripts/run, scripts/test and .ci/run: installs what a fresh
# Debian machine lacks and points every build at one reusable target dir.
# shellcheck shell=bash

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/danaus/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

_danaus_apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "danaus: installing $* (apt-get)" >&2
  $sudo apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

# The rocksdb crate's bindgen loads libclang through clang-sys, which looks
# for exactly `libclang.so` or `libclang-<version>.so` (in $LIBCLANG_PATH,
# llvm-config's libdir, the ld cache and /usr/lib*/llvm-*/lib). Other
# libraries of that prefix do not count: `libclang-cpp.so.14` (the C++
# interface, pulled in by other packages) and the soname `libclang.so.1`
# cannot serve it. Prints the library found; fails if there is none.
# $1: a root to look under instead of / (scripts/tests/libclang.sh uses it).
danaus_find_libclang() {
  local root="${1:-}" dir f
  local dirs=()
  [ -n "${LIBCLANG_PATH:-}" ] && [ -z "$root" ] && dirs+=("$LIBCLANG_PATH")
  for dir in "$root"/usr/lib/llvm-*/lib "$root"/usr/lib64/llvm-*/lib "$root"/usr/lib/x86_64-linux-gnu \
    "$root"/usr/lib/aarch64-linux-gnu "$root"/usr/lib "$root"/usr/lib64 "$root"/usr/local/lib; do
    [ -d "$dir" ] && dirs+=("$dir")
  done
  for dir in "${dirs[@]}"; do
    for f in "$dir"/libclang.so "$dir"/libclang-[0-9]*.so; do
      if [ -e "$f" ]; then
        echo "$f"
        return 0
      fi
    done
  done
  if [ -z "$root" ]; then
    # The cache can name files removed since it was built (removing
    # libclang-dev need not rebuild it): only a file that exists counts.
    for f in $(ldconfig -p 2>/dev/null | awk '$1 == "libclang.so" || $1 ~ /^libclang-[0-9][0-9.]*\.so$/ { print $NF }'); do
      if [ -e "$f" ]; then
        echo "$f"
        return 0
      fi
    done
  fi
  return 1
}

if [ -z "${DANAUS_ENV_NO_INSTALL:-}" ] && ! danaus_find_libclang >/dev/null; then
  _danaus_apt_install libclang-dev
  if ! danaus_find_libclang >/dev/null; then
    echo "danaus: libclang-dev installed but no libclang.so found; set LIBCLANG_PATH" >&2
  fi
fi

# sccache caches the C++ of RocksDB across clones; optional.
if [ -z "${DANAUS_ENV_NO_INSTALL:-}" ] && ! command -v sccache >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  _danaus_apt_install sccache || true
fi
if command -v sccache >/dev/null 2>&1 && [ -z "${RUSTC_WRAPPER:-}" ]; then
  export RUSTC_WRAPPER=sccache
  export SCCACHE_DIR="${SCCACHE_DIR:-$HOME/.cache/danaus/sccache}"
  export CARGO_INCREMENTAL=0
fi

# Prometheus, node_exporter, Alertmanager and VictoriaMetrics from Debian:
# the peers the interop tests and side-by-side benchmarks run against. Called by
# scripts/test and bench/ scripts, not by scripts/run.
danaus_install_peers() {
  local missing=()
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v prometheus-node-exporter >/dev/null 2>&1 || missing+=(prometheus-node-exporter)
  command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
  command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
  if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    _danaus_apt_install --no-install-recommends "${missing[@]}" || true
  fi
}
