#!/usr/bin/env bash
# Prints the path of libfaketime (Debian's `faketime` package), installing the
# package first when it is missing. Used by the clock-skew end-to-end tests.
set -euo pipefail
find_lib() {
  for d in /usr/lib/x86_64-linux-gnu/faketime /usr/lib/aarch64-linux-gnu/faketime /usr/lib/faketime; do
    if [ -f "$d/libfaketime.so.1" ]; then echo "$d/libfaketime.so.1"; return 0; fi
  done
  return 1
}
if ! find_lib; then
  if [ "$(id -u)" -eq 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime) >&2
  else
    (sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime) >&2
  fi
  find_lib
fi
