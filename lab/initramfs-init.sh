#!/bin/busybox sh
# Stage 1 of the lab VM (PID 1 in the initramfs): load the 9p modules, mount the host's / read-only
# as the root, lay the guest's own proc/sys/dev/tmp over it (never the host's), mount the one
# read-write results dir at its host path, and switch_root into stage 2 (lab/guest-init.sh in the
# checkout, read over 9p, so changing it needs no new initramfs).
# Parameters come from the kernel command line: vtier.mode=run|shell|probe vtier.checkout=PATH
# vtier.results=PATH (paths checked on the host: no spaces or shell characters).
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev

mode=run; checkout=; results=
for word in $($B cat /proc/cmdline); do
  case "$word" in
    vtier.mode=*) mode="${word#vtier.mode=}" ;;
    vtier.checkout=*) checkout="${word#vtier.checkout=}" ;;
    vtier.results=*) results="${word#vtier.results=}" ;;
  esac
done

fail() {
  echo "vtier-lab: stage 1: $*" > /dev/ttyS0
  $B poweroff -f
}

# The accelerator probe only needs to reach user space.
if [ "$mode" = probe ]; then
  echo "VTIER-LAB-PROBE-OK" > /dev/ttyS0
  $B poweroff -f
fi

for m in netfs 9pnet 9pnet_virtio 9p; do
  $B insmod "/modules/$m.ko" || fail "insmod $m failed"
done
$B mkdir -p /newroot
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose root /newroot || fail "cannot mount the host root over 9p"
$B mount -t proc proc /newroot/proc
$B mount -t sysfs sysfs /newroot/sys
$B mount -t devtmpfs devtmpfs /newroot/dev
$B mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
$B mount -t tmpfs tmpfs /newroot/run
# After the tmpfs mounts, so a results dir under /tmp or /run is not hidden by them (the
# mount point is made on the guest's tmpfs then; on the read-only root it exists already).
if [ -n "$results" ]; then
  $B mkdir -p "/newroot$results" 2>/dev/null
  $B mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=512000 results "/newroot$results" || fail "cannot mount the results dir $results"
fi
[ -x "/newroot$checkout/lab/guest-init.sh" ] || fail "no $checkout/lab/guest-init.sh in the host root"
exec $B switch_root /newroot /bin/bash "$checkout/lab/guest-init.sh" "$mode" "$checkout" "$results"
