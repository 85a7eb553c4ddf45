#!/usr/bin/env bash
# Checks scripts/env.sh's libclang detection against trees that hold what
# clang-sys can load and trees that only look as if they did (issue: a fresh
# Debian machine with libclang-cpp14 from another package has
# /usr/lib/llvm-14/lib/libclang-cpp.so.14 but no libclang.so, and the build
# failed in clang-sys after the script skipped installing libclang-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
DANAUS_ENV_NO_INSTALL=1 source scripts/env.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect() { # expect found|missing ROOT what
  local got=missing
  if danaus_find_libclang "$2" >/dev/null; then got=found; fi
  if [ "$got" != "$1" ]; then
    echo "libclang detection: $3: expected $1, got $got" >&2
    fail=1
  fi
}
lib="$tmp/usr/lib/llvm-14/lib"
mkdir -p "$lib" "$tmp/usr/lib/x86_64-linux-gnu"
expect missing "$tmp" "empty tree"
touch "$lib/libclang-cpp.so.14" "$lib/libclang-cpp.so" "$tmp/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14"
expect missing "$tmp" "only libclang-cpp (the C++ interface)"
touch "$lib/libclang.so.1" "$tmp/usr/lib/x86_64-linux-gnu/libclang-14.so.1"
expect missing "$tmp" "only sonames (libclang.so.1, libclang-14.so.1) that ld cannot link"
touch "$tmp/usr/lib/x86_64-linux-gnu/libclang-14.so"
expect found "$tmp" "a versioned libclang-14.so"
rm "$tmp/usr/lib/x86_64-linux-gnu/libclang-14.so"
touch "$lib/libclang.so"
expect found "$tmp" "libclang.so (libclang-dev)"
if [ "$fail" = 0 ]; then
  echo "libclang detection: 5 passed, 0 failed"
fi
exit "$fail"
