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

# The rocksdb crate's bindgen needs libclang.
if ! compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null && ! ldconfig -p 2>/dev/null | grep -q 'libclang[.-]'; then
  _danaus_apt_install libclang-dev
fi

# sccache caches the C++ of RocksDB across clones; optional.
if ! command -v sccache >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  _danaus_apt_install sccache || true
fi
if command -v sccache >/dev/null 2>&1 && [ -z "${RUSTC_WRAPPER:-}" ]; then
  export RUSTC_WRAPPER=sccache
  export SCCACHE_DIR="${SCCACHE_DIR:-$HOME/.cache/danaus/sccache}"
  export CARGO_INCREMENTAL=0
fi

# Prometheus, node_exporter and VictoriaMetrics from Debian: the peers the
# interop tests and side-by-side benchmarks run against. Called by
# scripts/test and bench/ scripts, not by scripts/run.
danaus_install_peers() {
  local missing=()
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v prometheus-node-exporter >/dev/null 2>&1 || missing+=(prometheus-node-exporter)
  command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
  if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    _danaus_apt_install --no-install-recommends "${missing[@]}" || true
  fi
}
