#!/bin/bash
# Stage 2 of the lab VM, PID 1 after switch_root (the host's / read-only over 9p, the guest's own
# proc/sys/dev/tmp). Mounts what a workstation has and the lab needs (bpffs, tracefs, cgroup2,
# devpts, /dev/shm), makes the /dev links udev would make, then runs the command the host wrote
# to RESULTS/.lab/run.sh with its output on the second serial port (ttyS1, streamed by the host),
# writes its exit status to RESULTS/.lab/exit-status and powers off.
#   guest-init.sh MODE CHECKOUT RESULTS       MODE: run | shell
mode="$1" checkout="$2" results="$3"
B=/bin/busybox
con=/dev/ttyS0
say() { echo "vtier-lab: $*" > "$con"; }

mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
# virtio-serial ports by name, as udev's 60-virtio-ports rule does.
mkdir -p /dev/virtio-ports
for port in /sys/class/virtio-ports/*; do
  [ -f "$port/name" ] || continue
  ln -sf "../$(basename "$port")" "/dev/virtio-ports/$(cat "$port/name")"
done
$B hostname vtier-lab
ip link set lo up 2>/dev/null || $B ifconfig lo 127.0.0.1 up

export HOME=/tmp PATH="/tmp/vtier-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" TERM="${TERM:-linux}"
export VTIER_LAB=1 VTIER_CHECKOUT="$checkout" VTIER_RESULTS="$results"
# `vtier` on the PATH inside, as the checkout's CLI.
mkdir -p /tmp/vtier-bin
printf '#!/bin/sh\nexec node %s/bin/vtier.js "$@"\n' "$checkout" > /tmp/vtier-bin/vtier
chmod +x /tmp/vtier-bin/vtier

control="$results/.lab"
status=255
case "$mode" in
  run)
    if [ -f "$control/run.sh" ]; then
      say "running $control/run.sh"
      bash "$control/run.sh" < /dev/null > /dev/ttyS1 2>&1
      status=$?
    else
      say "no $control/run.sh"
    fi
    ;;
  shell)
    cols= rows=
    [ -f "$control/tty" ] && read -r rows cols < "$control/tty"
    [ -n "$rows" ] && stty -F "$con" rows "$rows" cols "$cols" 2>/dev/null
    say "shell: exit it to power the VM off"
    cd "$checkout"
    $B setsid -c bash -i < "$con" > "$con" 2>&1
    status=$?
    ;;
esac
echo "$status" > "$control/exit-status.tmp" && mv "$control/exit-status.tmp" "$control/exit-status"
sync
say "exit status $status; powering off"
$B poweroff -f
