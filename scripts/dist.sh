#!/usr/bin/env bash
# Builds the release archive of the plugin for this machine's platform, its sha256, and the
# krew manifest rendered for it:
#
#   dist/kubectl-zen_<version>_<os>_<arch>.tar.gz
#   dist/kubectl-zen_<version>_<os>_<arch>.tar.gz.sha256
#   dist/zen.yaml
#
# The binary is build-static.sh's (static on Linux). DIST_DIR changes the output directory;
# RELEASE_URL the base URL the archive will be published under (default: the GitHub release of
# the version). The archive is reproducible: sorted entries, fixed owners, and
# SOURCE_DATE_EPOCH (default: the last commit's time) as every file's time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${DIST_DIR:-$root/dist}
cargo=${CARGO:-cargo}

# On Linux a static (musl) binary: the one the Dockerfile's image carries, too.
binary=$(CARGO="$cargo" bash "$root/scripts/build-static.sh")

# The version the binary itself reports: the archive can never be named after another one.
version=$("$binary" --version | awk '{print $2}')
case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "dist: unsupported OS $(uname -s)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "dist: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
archive="kubectl-zen_${version}_${os}_${arch}.tar.gz"
url="${RELEASE_URL:-https://github.com/kubectl-zen/kubectl-zen/releases/download/v$version}"

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$binary" "$stage/kubectl-zen"
install -m 0644 "$root/LICENSE" "$root/README.md" "$stage/"

mkdir -p "$out"
tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
  -C "$stage" -cf - kubectl-zen LICENSE README.md | gzip -9 -n > "$out/$archive"
(cd "$out" && sha256sum "$archive" > "$archive.sha256")
sha256=$(cut -d' ' -f1 "$out/$archive.sha256")

# The template's header comment explains the template, not the rendered manifest.
sed -e '/^#/d' -e "s|{{VERSION}}|$version|g" -e "s|{{OS}}|$os|g" -e "s|{{ARCH}}|$arch|g" \
  -e "s|{{URI}}|$url/$archive|g" -e "s|{{SHA256}}|$sha256|g" \
  "$root/kubectl-plugin/krew/zen.yaml" > "$out/zen.yaml"
if grep -q '{{' "$out/zen.yaml"; then
  echo "dist: the krew manifest template has a field dist.sh does not fill:" >&2
  grep -n '{{' "$out/zen.yaml" >&2
  exit 1
fi

echo "$out/$archive"
echo "$out/$archive.sha256"
echo "$out/zen.yaml"
