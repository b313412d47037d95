#!/usr/bin/env bash
# Installs everything vtier needs on Debian 12 (apt packages, npm ci, addon and BPF
# builds), then runs one job:
#   scripts/setup.sh demo   the main job on a built-in default
#   scripts/setup.sh test   the whole test suite
#   scripts/setup.sh        install and build only
# Idempotent: packages already present are not reinstalled. Run as root (or with sudo
# available): BPF, DAMON and move_pages need root anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

job="${1:-none}"
case "$job" in demo|test|none) ;; *) echo "setup.sh: unknown job '$job' (demo, test)" >&2; exit 2 ;; esac

# Build tools, BPF toolchain, and what the tests and campaigns drive for real.
APT_PACKAGES=(
  clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool make g++ python3 pkg-config
  qemu-system-x86 socat numactl linux-perf util-linux procps
  redis-server redis-tools sysbench stress-ng chromium
  busybox-static cpio xz-utils tmux
)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: vtier needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

echo "setup: npm ci"
# npm ci insists that the lock lists every platform's optional packages (rollup, esbuild,
# msgpackr-extract builds for other OSes). A registry mirror that does not serve those
# leaves them out of the lock, and npm ci then refuses it as "not in sync"; in that one
# case install the same locked versions with npm install --no-save (the lock is not touched).
npm_log=$(mktemp)
if ! npm ci --no-audit --no-fund --loglevel=error 2>"$npm_log"; then
  if grep -q 'in sync' "$npm_log"; then
    echo "setup: npm ci refused a lock without other platforms' optional packages; installing the locked versions with npm install --no-save"
    npm install --no-save --no-audit --no-fund --loglevel=error
  else
    cat "$npm_log" >&2
    exit 1
  fi
fi
rm -f "$npm_log"
echo "setup: building BPF objects, native addon and TypeScript"
npm run --silent build
# The lab VM (vtier lab, the demo's default, the lab tests): its guest kernel is fetched into
# .lab/ through a private apt state (the host's apt sources and boot are not touched), and
# its initramfs is built from busybox-static and the kernel's 9p modules.
echo "setup: lab VM (guest kernel and initramfs in .lab/)"
node bin/vtier.js lab setup

case "$job" in
  demo) exec node bin/vtier.js demo ;;
  test) exec npm test ;;
esac
