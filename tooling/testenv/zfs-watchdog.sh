#!/usr/bin/env bash
# Watches the test environment's zfs-fuse daemon while a test run uses it, and
# turns a daemon that stopped answering into a fast, explained failure.
#
# Why: zfs-fuse (0.7, unmaintained) has been seen, under the full suite's load,
# to stop answering FUSE requests for good or to die. A process waiting on an
# unanswered FUSE request sleeps in the kernel: the test runner waiting on it
# cannot time it out, and the run hangs until CI's limit. Real OpenZFS is not
# involved; this is the test stand-in failing.
#
# What it does, every few seconds, until the daemon is gone or it is killed:
#   - a process waiting on a FUSE request of a zfs-fuse mount for HANG_S (or
#     `zpool list` unanswered twice in a row) is a hang: it writes what explains
#     it (blocked tasks, the daemon's threads, a gdb backtrace when gdb is
#     there) to $DIR/zfs-fuse-hang.txt, aborts the daemon's FUSE connections (the
#     blocked calls fail with ENOTCONN) and kills the daemon;
#   - a daemon that died is recorded the same way.
# Either way it writes one line to $DIR/zfs-fuse.failed, which scripts/test.sh
# reads after the run. Usage: zfs-watchdog.sh (as root; DSG_TESTENV_DIR as testenv.sh).
set -uo pipefail

DIR=${DSG_TESTENV_DIR:-/tmp/dsg-testenv}
HANG_S=${DSG_ZFS_HANG_S:-150}
POLL_S=${DSG_ZFS_POLL_S:-5}
# `zpool list` every PROBE_EVERY polls, given PROBE_S to answer
PROBE_EVERY=${DSG_ZFS_PROBE_EVERY:-6}
PROBE_S=${DSG_ZFS_PROBE_S:-60}
FAILED="$DIR/zfs-fuse.failed"
REPORT="$DIR/zfs-fuse-hang.txt"

log() { printf 'zfs-watchdog: %s\n' "$*" >&2; }
daemon_pid() { [ -f "$DIR/zfs-fuse.pid" ] && cat "$DIR/zfs-fuse.pid"; }

# The FUSE connections of the daemon's mounts, the datasets under $DIR/mnt/ (a
# connection's name in fusectl is the minor number of the mount's device,
# mountinfo field 3, "0:NN"). Nothing else: another FUSE file system on the
# machine is not ours to abort.
fuse_connections() {
  awk -v d="$DIR/mnt/" 'index($5, d) == 1 && $0 ~ / - fuse(\.zfs)? / { split($3, n, ":"); print n[2] }' \
    /proc/self/mountinfo | sort -u
}

# Threads waiting on a FUSE request, as "pid tid stat wchan args" (the wait is
# shown as S or D depending on the request and on signals received: either
# one). Every thread, not only each process's main one: Node makes its file
# system calls on libuv's thread pool, so a test blocked on zfs-fuse has its
# main thread idle in epoll and one pool thread in request_wait_answer or
# fuse_get_req (a CI run hung 15 minutes that way, unseen). The daemon's own
# threads, and any thread serving /dev/fuse (fuse_dev_*), are the other side.
fuse_blocked() {
  local d
  d=$(daemon_pid)
  ps -eLo pid=,tid=,stat=,wchan:40=,args= 2>/dev/null |
    awk -v d="${d:-0}" '$1 != d && $4 ~ /^(request_wait_answer|fuse_)/ && $4 !~ /^fuse_dev/ { print }'
}

report() {
  local why=$1 pid=$2
  {
    echo "==== zfs-fuse stopped answering: $why ($(date -u +%FT%TZ))"
    echo "# threads blocked on FUSE (pid tid state wchan command)"; fuse_blocked
    fuse_blocked | while read -r p t _; do
      echo "## $p/$t: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null | cut -c1-300)"
      cat /proc/"$p"/task/"$t"/stack 2>/dev/null | head -20
    done
    echo "# zfs-fuse threads (pid $pid): state wchan"
    for t in /proc/"$pid"/task/*; do
      printf '%s %s %s\n' "${t##*/}" "$(awk '{print $3}' "$t/stat" 2>/dev/null)" "$(cat "$t/wchan" 2>/dev/null)"
    done
    if command -v gdb >/dev/null; then
      echo "# gdb: thread apply all bt"
      timeout 120 gdb -batch -nx -p "$pid" -ex 'set pagination off' -ex 'thread apply all bt' 2>&1 |
        grep -vE '^\[New LWP|^warning:' | head -600
    fi
    echo "# zfs-fuse.log (tail)"; tail -30 "$DIR/zfs-fuse.log" 2>/dev/null
  } >>"$REPORT" 2>&1
}

release() {
  local pid=$1 c
  # aborting frees every waiter at once, even one whose connection outlives the daemon
  if [ -d /sys/fs/fuse/connections ] && ! grep -q ' /sys/fs/fuse/connections fusectl' /proc/mounts; then
    mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
  fi
  for c in $(fuse_connections); do
    [ -w "/sys/fs/fuse/connections/$c/abort" ] && echo 1 >"/sys/fs/fuse/connections/$c/abort" 2>/dev/null
  done
  kill -9 "$pid" 2>/dev/null || true
}

fail() {
  local why=$1 pid=$2
  log "$why: see $REPORT"
  printf '%s\n' "$why" >>"$FAILED"
  report "$why" "$pid"
  release "$pid"
  exit 0
}

declare -A since=()
zpool_misses=0
tick=0
while :; do
  pid=$(daemon_pid) || exit 0
  [ -n "$pid" ] || exit 0
  if ! kill -0 "$pid" 2>/dev/null; then
    # testenv down removes the pid file before or right after the daemon stops
    [ -f "$DIR/zfs-fuse.pid" ] || exit 0
    printf 'zfs-fuse (pid %s) died during the run\n' "$pid" >>"$FAILED"
    { echo "==== zfs-fuse (pid $pid) died ($(date -u +%FT%TZ))"; tail -30 "$DIR/zfs-fuse.log"; } >>"$REPORT" 2>&1
    log "zfs-fuse (pid $pid) died: see $REPORT"
    exit 0
  fi
  now=$(date +%s)
  declare -A seen=()
  while read -r p t _; do
    [ -n "$t" ] || continue
    seen[$t]=1
    [ -n "${since[$t]:-}" ] || since[$t]=$now
    if [ $((now - since[$t])) -ge "$HANG_S" ]; then
      fail "a process ($(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null | cut -c1-120)) waited ${HANG_S}s on a zfs-fuse FUSE request" "$pid"
    fi
  done < <(fuse_blocked)
  for p in "${!since[@]}"; do [ -n "${seen[$p]:-}" ] || unset "since[$p]"; done
  unset seen
  tick=$((tick + 1))
  if [ $((tick % PROBE_EVERY)) = 0 ]; then
    if timeout "$PROBE_S" zpool list -H -o name >/dev/null 2>&1; then
      zpool_misses=0
    else
      zpool_misses=$((zpool_misses + 1))
      [ "$zpool_misses" -ge 2 ] && kill -0 "$pid" 2>/dev/null && fail "zpool list went unanswered twice (${PROBE_S}s each)" "$pid"
    fi
  fi
  sleep "$POLL_S"
done
