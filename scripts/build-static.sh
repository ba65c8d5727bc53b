#!/usr/bin/env bash
# Builds the plugin's release binary (the `dist` profile: fat LTO, one codegen unit, abort on
# panic) and prints its path. On Linux the binary is static, linked against musl: no libc and
# no loader to find at run time, so it runs unchanged on any Linux, in a scratch or
# distroless/static image, and in an empty chroot. It needs the Rust target
# (`rustup target add "$(uname -m)-unknown-linux-musl"`) and a musl C compiler for ring's and
# mimalloc's C code (Debian's musl-tools: musl-gcc; CC_MUSL names another). Elsewhere it is
# the host's native build.
#
# dist.sh (the krew archive) and the Dockerfile both build through this script: one recipe.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cargo=${CARGO:-cargo}

args=(build --locked --profile dist -p kubectl-zen --manifest-path "$root/Cargo.toml")
target=
if [[ "$(uname -s)" == Linux ]]; then
  target="$(uname -m)-unknown-linux-musl"
  # cc-rs reads CC_<target with underscores>.
  export "CC_${target//-/_}=${CC_MUSL:-musl-gcc}"
  args+=(--target "$target")
fi
"$cargo" "${args[@]}" >&2

target_dir=$("$cargo" metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
binary="$target_dir/${target:+$target/}dist/kubectl-zen"
if [[ -z "$target_dir" || ! -x "$binary" ]]; then
  echo "build-static: no binary at '$binary' (cargo metadata's target_directory: '$target_dir')" >&2
  exit 1
fi
echo "$binary"
