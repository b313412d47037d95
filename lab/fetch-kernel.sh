#!/usr/bin/env bash
# Fetches the lab VM's guest kernel: Debian bookworm-backports' linux-image-amd64 (6.12.x),
# which has DAMON (paddr, vaddr, sysfs), BTF, BPF, virtio-console and NUMA built in and 9p as
# modules (bookworm's own 6.1 has no DAMON). It goes through a private apt state (own
# sources list, lists and cache under the cache dir), so the host's apt sources, package
# database and boot are never touched, and is unpacked with dpkg-deb -x, not installed.
#
#   lab/fetch-kernel.sh [CACHE_DIR]      default: <checkout>/.lab
#
# Idempotent: with CACHE_DIR/kernel.json present and its files in place it does nothing.
# Writes CACHE_DIR/kernel.json last, so an interrupted fetch is redone next time.
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
cache="${1:-$checkout/.lab}"
manifest="$cache/kernel.json"

if [ -f "$manifest" ]; then
  vmlinuz=$(sed -n 's/.*"vmlinuz": *"\([^"]*\)".*/\1/p' "$manifest")
  if [ -n "$vmlinuz" ] && [ -f "$cache/$vmlinuz" ]; then
    echo "lab: guest kernel already cached ($(sed -n 's/.*"release": *"\([^"]*\)".*/\1/p' "$manifest"))"
    exit 0
  fi
fi

# The mirror the host already uses for Debian itself (deb822 or one-line sources), so the
# lab works behind the same mirror; deb.debian.org when none is found.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '
    /^URIs:/ { uris = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") ok = 1 }
    /^$/ { if (ok && uris != "") { print uris; exit } uris = ""; ok = 0 }
    END { if (ok && uris != "") print uris }' "$f" | head -1)
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit } }' /etc/apt/sources.list | head -1)
fi
mirror="${mirror:-http://deb.debian.org/debian}"

apt_dir="$cache/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/etc" "$cache/deb"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm-backports main" > "$apt_dir/etc/sources.list"
apt_opts=(
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Etc::sourcelist=$apt_dir/etc/sources.list"
  -o "Dir::Etc::sourceparts=$apt_dir/etc/none.d"
  -o "APT::Sandbox::User=root"
  -qq
)
echo "lab: fetching the bookworm-backports package index from $mirror"
apt-get "${apt_opts[@]}" update

# linux-image-amd64 is a metapackage: the real image is its one linux-image-* dependency.
image=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$image" ]; then
  echo "lab: bookworm-backports lists no linux-image-amd64 dependency; cannot pick a guest kernel" >&2
  exit 1
fi
echo "lab: downloading $image"
rm -f "$cache/deb/"*.deb
(cd "$cache/deb" && apt-get "${apt_opts[@]}" download "$image")
deb=$(ls "$cache/deb/"*.deb | head -1)

release="${image#linux-image-}"
unpack="$cache/kernel-$release"
rm -rf "$unpack.tmp"
dpkg-deb -x "$deb" "$unpack.tmp"
[ -f "$unpack.tmp/boot/vmlinuz-$release" ] || { echo "lab: $deb has no boot/vmlinuz-$release" >&2; exit 1; }
rm -rf "$unpack"
mv "$unpack.tmp" "$unpack"
rm -f "$deb"

cat > "$manifest.tmp" <<JSON
{
  "package": "$image",
  "release": "$release",
  "mirror": "$mirror",
  "vmlinuz": "kernel-$release/boot/vmlinuz-$release",
  "config": "kernel-$release/boot/config-$release",
  "modules": "kernel-$release/lib/modules/$release"
}
JSON
mv "$manifest.tmp" "$manifest"
echo "lab: guest kernel $release cached in $unpack"
