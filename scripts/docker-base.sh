#!/usr/bin/env bash
# Makes the base image of the Dockerfile, debian:bookworm-slim, locally when the
# Docker engine does not have it (hosts with no image registry to pull from):
# debootstraps a minbase Debian bookworm from the configured Debian mirror (or
# deb.debian.org), trims apt lists, docs and man pages, and imports the tree as
# debian:bookworm-slim. Does nothing, quietly, when the image already exists.
# Needs root (debootstrap); installs debootstrap with apt-get when missing.
#
#   scripts/docker-base.sh && docker compose up -d --build
set -euo pipefail

IMAGE=debian:bookworm-slim
SUITE=bookworm

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo -n"
else
  SUDO=""
fi

# The Debian mirror apt uses for $SUITE (not the security archive), from
# one-line sources.list entries or deb822 .sources stanzas; deb.debian.org else.
find_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite && $i ~ /debian\/?$/) { print $i; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" '
      function flush() {
        if (!done && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no") {
          n = split(uris, u, " ")
          for (j = 1; j <= n; j++) if (u[j] ~ /debian\/?$/) { print u[j]; done = 1; exit }
        }
        types = ""; suites = ""; uris = ""; enabled = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^#/ { next }
      tolower($1) == "types:"   { $1 = ""; types = $0 }
      tolower($1) == "suites:"  { $1 = ""; suites = $0 }
      tolower($1) == "uris:"    { $1 = ""; uris = $0 }
      tolower($1) == "enabled:" { enabled = tolower($2) }
      END { flush() }' "$f"
  done
}
MIRROR=$(find_mirror | head -n 1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "docker-base: installing debootstrap" >&2
  ($SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap) >/dev/null
fi

ROOTFS=$(mktemp -d /tmp/swimkv-rootfs.XXXXXX)
cleanup() { $SUDO rm -rf --one-file-system "$ROOTFS"; }
trap cleanup EXIT

echo "docker-base: building $IMAGE with debootstrap from $MIRROR (takes a minute or two)" >&2
if ! $SUDO debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1; then
  tail -n 30 "$ROOTFS.log" >&2
  [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
  rm -f "$ROOTFS.log"
  exit 1
fi
rm -f "$ROOTFS.log"

# Trim like the slim image: package lists, caches, docs, man and info pages,
# translations, logs; and keep packages installed later from bringing them back.
$SUDO find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
$SUDO tee "$ROOTFS/etc/dpkg/dpkg.cfg.d/docker-slim" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
$SUDO rm -rf \
  "$ROOTFS"/var/lib/apt/lists/* \
  "$ROOTFS"/var/cache/apt/*.bin \
  "$ROOTFS"/var/cache/apt/archives/*.deb \
  "$ROOTFS"/var/cache/debconf/*-old \
  "$ROOTFS"/usr/share/doc/* \
  "$ROOTFS"/usr/share/man/* \
  "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/var/log/*.log \
  "$ROOTFS"/var/log/apt/* \
  "$ROOTFS"/tmp/*

$SUDO tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  - "$IMAGE" >/dev/null
echo "docker-base: imported $IMAGE" >&2
