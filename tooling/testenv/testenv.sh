#!/usr/bin/env bash
# Brings up the real parts dsg's tests use, on a Debian machine, as root:
#   - a zfs-fuse daemon and a pool on a sparse file   (DSG_TEST_POOL, default dsgtest, 512M)
#   - a second pool on the same daemon, the replication target (DSG_TEST_POOL2, default dsgtest2, 256M)
#   - an sshd on 127.0.0.1 on a free port, with a host key and a user key made for this run,
#     and a replication key whose commands run with zfs-compat/ (a zfs-fuse wrapper for syncoid) first on PATH
#   - a non-root login (DSG_TEST_AGENT_USER, default dsgagent) with the sudo rule the
#     README documents for a non-root agent: `sudo -n zfs`, and `sudo -n chown` of a new
#     repository dataset under $POOL/sudo-e2e only
#   - a second unprivileged user (DSG_TEST_CLIENT_USER, default dsgclient) with its own
#     home, as whom tests run the built `dsg` client (no login, no sudo)
#   - an npm registry (verdaccio, from this checkout's dependencies) on 127.0.0.1 on a free
#     port, storage under $DSG_TESTENV_DIR/registry, and a publishing user made for this run:
#     @dsg/* packages live only there, everything else is proxied from npm's configured registry
# Usage: testenv.sh up | down | env | diag
# `up` is idempotent; it writes $DSG_TESTENV_DIR/env (shell `export` lines) and prints it.
# `down` stops only what `up` started, by the pids it recorded — never by process name.
set -euo pipefail

DIR=${DSG_TESTENV_DIR:-/tmp/dsg-testenv}
POOL=${DSG_TEST_POOL:-dsgtest}
POOL_SIZE=${DSG_TEST_POOL_SIZE:-1G}
# a second, smaller pool on the same daemon: the target of the replication tests
POOL2=${DSG_TEST_POOL2:-dsgtest2}
POOL2_SIZE=${DSG_TEST_POOL2_SIZE:-256M}
ENVFILE="$DIR/env"

log() { printf 'testenv: %s\n' "$*" >&2; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_missing() {
  local need=()
  command -v zfs-fuse >/dev/null || need+=(zfs-fuse)
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh-keygen >/dev/null || need+=(openssh-client)
  command -v rsync >/dev/null || need+=(rsync)
  command -v sudo >/dev/null || need+=(sudo)
  # syncoid (Debian's sanoid package): the engine `dsg-agent replicate` drives
  command -v syncoid >/dev/null || [ -x /usr/sbin/syncoid ] || need+=(sanoid)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# Where the pool's file vdev lives: a RAM-backed /dev/shm when it has room (a
# host disk that fills under a zfs-fuse vdev blocks zfs-fuse forever, and CI
# machines have been seen with little free disk), else $DIR.
image_dir() {
  if [ -n "${DSG_TEST_POOL_IMG_DIR:-}" ]; then echo "$DSG_TEST_POOL_IMG_DIR"; return; fi
  local free_kb
  free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')
  if [ -n "$free_kb" ] && [ "$free_kb" -gt $((4 * 1024 * 1024)) ] && [ -w /dev/shm ]; then echo /dev/shm; else echo "$DIR"; fi
}

start_daemon() {
  [ -e /dev/fuse ] || { log "no /dev/fuse: zfs-fuse cannot run here"; return 1; }
  log "starting zfs-fuse"
  # --no-daemon keeps it our child so we know its pid; setsid detaches it from this shell.
  setsid zfs-fuse --no-daemon >>"$DIR/zfs-fuse.log" 2>&1 < /dev/null &
  echo $! >"$DIR/zfs-fuse.pid"
  for _ in $(seq 1 50); do zpool list >/dev/null 2>&1 && break; sleep 0.2; done
  zpool list >/dev/null 2>&1 || { log "zfs-fuse did not answer; see $DIR/zfs-fuse.log"; return 1; }
}

create_pool() {
  local img; img="$(image_dir)/$POOL.img"
  rm -f "$img"
  truncate -s "$POOL_SIZE" "$img"
  echo "$img" >"$DIR/pool.image"
  mkdir -p "$DIR/mnt"
  # A pool recreated after a daemon that died with datasets mounted leaves their
  # empty mountpoint directories behind, and zpool create refuses a non-empty
  # mountpoint: clear ours, never while anything is mounted under it.
  if [ -d "$DIR/mnt/$POOL" ] && ! grep -q " $DIR/mnt/$POOL" /proc/mounts; then
    rm -rf "${DIR:?}/mnt/$POOL"
  fi
  # The pool's root is never mounted (canmount=off): datasets the tests create
  # get their mountpoint directories on the plain disk under $DIR/mnt, so no
  # test depends on the root dataset's FUSE mount.
  if ! timeout 120 zpool create -f -O canmount=off -m "$DIR/mnt/$POOL" "$POOL" "$img" >"$DIR/zpool-create.log" 2>&1; then
    log "zpool create $POOL failed: $(tr '\n' ' ' <"$DIR/zpool-create.log")"
    return 1
  fi
  touch "$DIR/pool.created"
  log "pool $POOL created ($POOL_SIZE on $img)"
}

# Proves the pool works end to end before any test runs: create a dataset,
# write and read a file in its mount, destroy it.
probe_pool() {
  local ds="$POOL/probe-$$" mp ok=0
  if timeout 60 zfs create "$ds" >"$DIR/probe.log" 2>&1; then
    mp=$(zfs get -H -o value mountpoint "$ds")
    if echo dsg-probe >"$mp/probe" 2>>"$DIR/probe.log" && [ "$(cat "$mp/probe" 2>/dev/null)" = dsg-probe ]; then ok=1; fi
  fi
  for _ in $(seq 1 30); do
    timeout 60 zfs destroy -f "$ds" >>"$DIR/probe.log" 2>&1 && break
    zfs list -H "$ds" >/dev/null 2>&1 || break
    sleep 0.5
  done
  [ $ok = 1 ] || { log "pool probe failed: $(tr '\n' ' ' <"$DIR/probe.log")"; return 1; }
}

# A test pool zfs-fuse still lists but cannot use (FAULTED/UNAVAIL: its image
# was on a /dev/shm that a reboot emptied) would be taken as "present" and
# fail every test: destroy it, so it is imported or made again.
drop_if_unusable() {
  local health
  health="$(zpool list -H -o health "$1" 2>/dev/null)" || return 0
  case "$health" in ONLINE | DEGRADED) return 0 ;; esac
  log "pool $1 is $health: destroying it to make it again"
  timeout 60 zpool destroy -f "$1" >/dev/null 2>&1 || log "could not destroy pool $1"
}

start_zfs() {
  if zpool list >/dev/null 2>&1; then log "zfs-fuse already answering"; else start_daemon || return 1; fi
  drop_if_unusable "$POOL"
  if zpool list -H "$POOL" >/dev/null 2>&1; then
    log "pool $POOL present"
  elif [ -f "$DIR/pool.image" ] && [ -f "$(cat "$DIR/pool.image")" ] \
      && zpool import -d "$(dirname "$(cat "$DIR/pool.image")")" "$POOL" >/dev/null 2>&1; then
    log "pool $POOL imported"
  else
    create_pool || { diag; return 1; }
  fi
  probe_pool && return 0
  diag
  # One clean retry from scratch when we own the pool: destroy it, restart our
  # daemon, create it again, probe again.
  if [ -f "$DIR/pool.created" ]; then
    log "retrying: new zfs-fuse daemon and pool"
    destroy_pool
    stop_daemon
    { start_daemon && create_pool && probe_pool; } || { diag; return 1; }
  else
    return 1
  fi
}

destroy_pool() {
  if [ -f "$DIR/pool.created" ] && zpool list -H "$POOL" >/dev/null 2>&1; then
    # zfs-fuse reports "pool is busy" for a moment after the last unmount: retry
    for _ in $(seq 1 30); do timeout 60 zpool destroy -f "$POOL" 2>/dev/null && break; sleep 0.5; done
    if zpool list -H "$POOL" >/dev/null 2>&1; then log "could not destroy pool $POOL"; return 1; fi
    log "pool $POOL destroyed"
  fi
  if [ -f "$DIR/pool.image" ]; then rm -f "$(cat "$DIR/pool.image")" "$DIR/pool.image"; fi
  rm -f "$DIR/pool.created" "$DIR/$POOL.img"
}

# The replication target: a second pool on the same daemon, made like the first
# (canmount=off root, mountpoint under $DIR/mnt). Its failure only skips the
# replication tests, so it never fails `up` on its own.
start_pool2() {
  drop_if_unusable "$POOL2"
  if zpool list -H "$POOL2" >/dev/null 2>&1; then log "pool $POOL2 present"; return 0; fi
  local img
  if [ -f "$DIR/pool2.image" ] && [ -f "$(cat "$DIR/pool2.image")" ] \
      && zpool import -d "$(dirname "$(cat "$DIR/pool2.image")")" "$POOL2" >/dev/null 2>&1; then
    log "pool $POOL2 imported"; return 0
  fi
  img="$(image_dir)/$POOL2.img"
  rm -f "$img"
  truncate -s "$POOL2_SIZE" "$img"
  echo "$img" >"$DIR/pool2.image"
  if [ -d "$DIR/mnt/$POOL2" ] && ! grep -q " $DIR/mnt/$POOL2" /proc/mounts; then
    rm -rf "${DIR:?}/mnt/$POOL2"
  fi
  if ! timeout 120 zpool create -f -O canmount=off -m "$DIR/mnt/$POOL2" "$POOL2" "$img" >"$DIR/zpool2-create.log" 2>&1; then
    log "zpool create $POOL2 failed: $(tr '\n' ' ' <"$DIR/zpool2-create.log")"
    return 1
  fi
  # the name, so `down` destroys this pool even when run with another DSG_TEST_POOL2 (or none)
  echo "$POOL2" >"$DIR/pool2.created"
  log "pool $POOL2 created ($POOL2_SIZE on $img)"
}

destroy_pool2() {
  local made="$POOL2"
  if [ -s "$DIR/pool2.created" ]; then made="$(cat "$DIR/pool2.created")"; fi
  if [ -f "$DIR/pool2.created" ] && zpool list -H "$made" >/dev/null 2>&1; then
    for _ in $(seq 1 30); do timeout 60 zpool destroy -f "$made" 2>/dev/null && break; sleep 0.5; done
    if zpool list -H "$made" >/dev/null 2>&1; then log "could not destroy pool $made"; return 1; fi
    log "pool $made destroyed"
  fi
  if [ -f "$DIR/pool2.image" ]; then rm -f "$(cat "$DIR/pool2.image")" "$DIR/pool2.image"; fi
  rm -f "$DIR/pool2.created"
}

stop_daemon() {
  [ -f "$DIR/zfs-fuse.pid" ] || return 0
  if alive "$DIR/zfs-fuse.pid"; then
    kill "$(cat "$DIR/zfs-fuse.pid")"
    for _ in $(seq 1 50); do alive "$DIR/zfs-fuse.pid" || break; sleep 0.1; done
    # a deadlocked zfs-fuse ignores SIGTERM (seen under several concurrent pool users):
    # its clients hang in D state until it is gone
    if alive "$DIR/zfs-fuse.pid"; then
      kill -9 "$(cat "$DIR/zfs-fuse.pid")"
      for _ in $(seq 1 50); do alive "$DIR/zfs-fuse.pid" || break; sleep 0.1; done
      log "zfs-fuse did not stop on SIGTERM: killed"
    else
      log "zfs-fuse stopped"
    fi
  else
    log "zfs-fuse (ours) was already gone"
  fi
  # mounts the stopped (or dead: killed by zfs-watchdog.sh) daemon left behind answer
  # ENOTCONN until unmounted; only when the daemon was OURS: a down that did not
  # start it (the bench beside the tests) must not unmount the pools another run uses
  mount -t fuse.zfs 2>/dev/null | awk '{print $3}' | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if grep -q ' /zfs-kstat fuse ' /proc/mounts; then umount -l /zfs-kstat 2>/dev/null || true; fi
  rm -f "$DIR/zfs-fuse.pid"
}

# What a failed setup or run needs to be understood, printed where CI shows it.
diag() {
  {
    echo "---- testenv diagnostics ($DIR) ----"
    echo "# df"; df -h "$DIR" /dev/shm 2>&1
    echo "# zpool list / status"; timeout 20 zpool list 2>&1; timeout 20 zpool status "$POOL" 2>&1 | head -20
    echo "# zfs list"; timeout 20 zfs list -r -t all -o name,mounted,mountpoint "$POOL" 2>&1 | head -40
    echo "# fuse mounts"; grep -E 'fuse' /proc/mounts 2>&1 | head -20
    echo "# $DIR/mnt"; ls -la "$DIR/mnt" "$DIR/mnt/$POOL" 2>&1 | head -30
    # a zfs-fuse that stopped answering shows as tasks the kernel reports blocked on a FUSE request
    echo "# blocked tasks (kernel)"; dmesg 2>/dev/null | grep -E 'blocked for more than|fuse_|request_wait_answer' | tail -12
    echo "# processes in D state"; ps -eo pid,stat,wchan:32,etime,args 2>/dev/null | awk 'NR==1 || $2 ~ /^D/' | head -20
    echo "# zfs-fuse.log (tail)"; tail -20 "$DIR/zfs-fuse.log" 2>&1
    echo "# sshd.log (tail)"; tail -10 "$DIR/sshd.log" 2>&1
    echo "# registry.log (tail)"; tail -10 "$DIR/registry.log" 2>&1
    echo "---- end diagnostics ----"
  } >&2
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

start_sshd() {
  if alive "$DIR/sshd.pid"; then log "sshd already running"; return 0; fi
  mkdir -p /run/sshd "$DIR/ssh"
  chmod 700 "$DIR/ssh"
  [ -f "$DIR/ssh/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/host_ed25519" -C dsg-testenv-host
  [ -f "$DIR/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/id_ed25519" -C dsg-testenv-user
  cp "$DIR/ssh/id_ed25519.pub" "$DIR/ssh/authorized_keys"
  chmod 600 "$DIR/ssh/authorized_keys"
  local port; port=$(free_port)
  # SHLVL=1: Debian's bash sources ~/.bashrc for every command sshd runs when
  # it is a top-level shell; this machine's root .bashrc runs `pyenv init`
  # (~30 processes, 0.6 s a session). Level 2 skips it, as on a server whose
  # login shell is plain. Measured: `ssh host true` 0.88 s → 0.25 s.
  cat >"$DIR/ssh/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $DIR/ssh/host_ed25519
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
MaxSessions 50
MaxStartups 50:30:100
SetEnv PATH=$(dirname "$(command -v node)"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SHLVL=1
CONF
  /usr/sbin/sshd -f "$DIR/ssh/sshd_config" -E "$DIR/sshd.log"
  for _ in $(seq 1 50); do alive "$DIR/sshd.pid" && break; sleep 0.1; done
  alive "$DIR/sshd.pid" || { log "sshd did not start; see $DIR/sshd.log"; return 1; }
  echo "$port" >"$DIR/ssh/port"
  printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$DIR/ssh/host_ed25519.pub")" >"$DIR/ssh/known_hosts"
  log "sshd on 127.0.0.1:$port"
}

# The replication key: a second user key whose authorized_keys entry runs every
# command through zfs-compat/ssh-command, i.e. with the zfs-fuse compatibility
# wrapper (zfs-compat/zfs) first on PATH. syncoid lists a replica's snapshots
# with `zfs get -t snapshot`, which zfs-fuse refuses, and its fallback breaks
# over ssh; real OpenZFS needs none of this. Only the test environment uses the
# wrapper: the ordinary key (and the product code) run the real zfs. The files
# are copied under $DIR so the entry does not depend on the checkout it came from.
setup_replica_key() {
  local src; src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/zfs-compat"
  mkdir -p "$DIR/zfs-compat"
  install -m 0755 "$src/zfs" "$src/ssh-command" "$DIR/zfs-compat/"
  [ -f "$DIR/ssh/id_replica" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/id_replica" -C dsg-testenv-replica
  local entry
  entry="command=\"$DIR/zfs-compat/ssh-command\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty $(cut -d' ' -f1,2 "$DIR/ssh/id_replica.pub") dsg-testenv-replica"
  if ! grep -qxF "$entry" "$DIR/ssh/authorized_keys"; then
    # any older entry of this key goes first (a changed $DIR), then the current one
    grep -v ' dsg-testenv-replica$' "$DIR/ssh/authorized_keys" >"$DIR/ssh/authorized_keys.tmp" || true
    printf '%s\n' "$entry" >>"$DIR/ssh/authorized_keys.tmp"
    chmod --reference="$DIR/ssh/authorized_keys" "$DIR/ssh/authorized_keys.tmp"
    mv "$DIR/ssh/authorized_keys.tmp" "$DIR/ssh/authorized_keys"
  fi
  log "replication key $DIR/ssh/id_replica (zfs-fuse compatibility wrapper first on PATH)"
}

VERDACCIO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/node_modules/.bin/verdaccio"

# The registry the release tests publish to and install from. A fresh storage
# per `up`: a version published by an earlier run cannot hide a broken one.
start_registry() {
  if alive "$DIR/registry.pid"; then log "registry already running"; return 0; fi
  [ -x "$VERDACCIO" ] || { log "no verdaccio in $VERDACCIO (run scripts/bootstrap.sh first)"; return 1; }
  local reg="$DIR/registry" port uplink
  rm -rf "$reg"
  mkdir -p "$reg/storage"
  port=$(free_port)
  uplink=$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
  cat >"$reg/config.yaml" <<CONF
storage: $reg/storage
auth:
  htpasswd:
    file: $reg/htpasswd
    max_users: 1
uplinks:
  upstream:
    url: $uplink
    timeout: 60s
packages:
  '@dsg/*':
    access: \$all
    publish: \$authenticated
    unpublish: \$authenticated
  '**':
    access: \$all
    proxy: upstream
listen: 127.0.0.1:$port
log: { type: stdout, format: pretty, level: warn }
CONF
  setsid "$VERDACCIO" --config "$reg/config.yaml" >>"$DIR/registry.log" 2>&1 </dev/null &
  echo $! >"$DIR/registry.pid"
  local url="http://127.0.0.1:$port/"
  # the publishing user: created through the registry's own API (what `npm adduser` does)
  local token=""
  for _ in $(seq 1 100); do
    alive "$DIR/registry.pid" || break
    token=$(REG="$url" node -e '
      fetch(process.env.REG + "-/user/org.couchdb.user:dsg-ci", { method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "dsg-ci", password: require("crypto").randomBytes(18).toString("hex") }) })
        .then(async (r) => { const j = await r.json(); if (!j.token) process.exit(1); console.log(j.token); })
        .catch(() => process.exit(1))' 2>/dev/null) && break
    sleep 0.2
  done
  if [ -z "$token" ]; then
    log "registry did not start; see $DIR/registry.log"
    # stopped again, or the next `up` would find it "already running" and export nothing
    stop_registry
    return 1
  fi
  echo "$url" >"$reg/url"
  ( umask 077; echo "$token" >"$reg/token" )
  log "npm registry on $url (uplink $uplink)"
}

stop_registry() {
  if alive "$DIR/registry.pid"; then kill "$(cat "$DIR/registry.pid")"; log "registry stopped"; fi
  rm -f "$DIR/registry.pid"
  rm -rf "$DIR/registry"
}

AGENT_USER=${DSG_TEST_AGENT_USER:-dsgagent}
SUDOERS=/etc/sudoers.d/dsg-testenv-$POOL

# The non-root agent login and its sudo rule: exactly the README's rule, with the
# parent dataset the sudo tests use ($POOL/sudo-e2e) as /var/repos/dsg.
setup_agent_user() {
  command -v sudo >/dev/null || { log "no sudo: the non-root agent tests will skip"; return 1; }
  id -u "$AGENT_USER" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/sh "$AGENT_USER" || return 1
  # useradd leaves the password "!" (locked), and sshd without PAM refuses a locked
  # account even for key logins: "*" is "no password", not locked
  usermod -p '*' "$AGENT_USER"
  # sshd reads authorized_keys as the user logging in (the private key stays root's, 600)
  chmod 711 "$DIR" "$DIR/ssh"
  chmod 644 "$DIR/ssh/authorized_keys"
  local mnt; mnt=$(zfs get -H -o value mountpoint "$POOL" 2>/dev/null) || return 1
  # sudoers regex: escape the path's dots; ':' must be escaped in sudoers arguments
  local parent; parent=$(printf '%s/sudo-e2e' "$mnt" | sed 's/[.]/\\./g')
  local rule="$AGENT_USER ALL=(root) NOPASSWD: $(command -v zfs), $(command -v chown) ^-h [0-9]+\\:[0-9]+ -- $parent/[A-Za-z0-9][A-Za-z0-9._-]*-init-[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}\$"
  printf '%s\n' "$rule" >"$DIR/sudoers.tmp"
  visudo -cqf "$DIR/sudoers.tmp" || { log "sudo rule rejected by visudo: $rule"; return 1; }
  install -m 0440 "$DIR/sudoers.tmp" "$SUDOERS"
  rm -f "$DIR/sudoers.tmp"
  log "agent user $AGENT_USER with sudo for zfs and chown under $POOL/sudo-e2e"
}

CLIENT_USER=${DSG_TEST_CLIENT_USER:-dsgclient}
# this checkout: the non-root users run its built files (the client, the agent bundle)
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Every directory from / down to the checkout must be traversable (x) by the
# non-root users, or they cannot run the built files. A clone in a private
# directory (a home of mode 700, a mktemp -d) is not: such directories get o+x
# (traverse, not list), and are recorded so `down` takes the bit away again.
open_checkout() {
  local d="$CHECKOUT"
  while :; do
    if [ $(( 8#$(stat -c %a "$d") & 1 )) = 0 ]; then
      chmod o+x "$d" || return 1
      grep -qxF "$d" "$DIR/opened-dirs" 2>/dev/null || printf '%s\n' "$d" >>"$DIR/opened-dirs"
      log "made $d traversable (o+x) for the non-root test users"
    fi
    [ "$d" = / ] && break
    d=$(dirname "$d")
  done
}

# The non-root client user: no password, no sudo, no key in authorized_keys;
# tests spawn the built dsg with its uid/gid and give it a sandbox it owns.
setup_client_user() {
  id -u "$CLIENT_USER" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/sh "$CLIENT_USER" || return 1
  local home; home=$(getent passwd "$CLIENT_USER" | cut -d: -f6)
  [ -d "$home" ] || { mkdir -p "$home" && chown "$CLIENT_USER:" "$home" && chmod 755 "$home"; } || return 1
  open_checkout || { log "could not make $CHECKOUT reachable for $CLIENT_USER"; return 1; }
  printf '%s\n' "$CLIENT_USER" >"$DIR/client-user"
  log "client user $CLIENT_USER (home $home)"
}

write_env() {
  {
    echo "export DSG_TESTENV_DIR=$DIR"
    if zpool list -H "$POOL" >/dev/null 2>&1; then
      echo "export DSG_TEST_POOL=$POOL"
      echo "export DSG_TEST_POOL_MOUNT=$(zfs get -H -o value mountpoint "$POOL")"
    fi
    if zpool list -H "$POOL2" >/dev/null 2>&1; then
      echo "export DSG_TEST_POOL2=$POOL2"
      echo "export DSG_TEST_POOL2_MOUNT=$(zfs get -H -o value mountpoint "$POOL2")"
    fi
    if alive "$DIR/sshd.pid"; then
      echo "export DSG_TEST_SSH_HOST=127.0.0.1"
      echo "export DSG_TEST_SSH_PORT=$(cat "$DIR/ssh/port")"
      echo "export DSG_TEST_SSH_USER=$(id -un)"
      echo "export DSG_TEST_SSH_KEY=$DIR/ssh/id_ed25519"
      echo "export DSG_TEST_SSH_KNOWN_HOSTS=$DIR/ssh/known_hosts"
      echo "export DSG_TEST_SSH_HOST_PUB=$DIR/ssh/host_ed25519.pub"
      if [ -f "$SUDOERS" ]; then echo "export DSG_TEST_SSH_SUDO_USER=$AGENT_USER"; fi
      if [ -f "$DIR/ssh/id_replica" ] && grep -q ' dsg-testenv-replica$' "$DIR/ssh/authorized_keys"; then
        echo "export DSG_TEST_SSH_REPLICA_KEY=$DIR/ssh/id_replica"
      fi
    fi
    if alive "$DIR/registry.pid" && [ -f "$DIR/registry/url" ]; then
      echo "export DSG_TEST_REGISTRY=$(cat "$DIR/registry/url")"
      echo "export DSG_TEST_REGISTRY_TOKEN_FILE=$DIR/registry/token"
    fi
    if [ -f "$DIR/client-user" ] && id -u "$(cat "$DIR/client-user")" >/dev/null 2>&1; then
      echo "export DSG_TEST_CLIENT_USER=$(cat "$DIR/client-user")"
    fi
  } >"$ENVFILE.tmp"
  mv "$ENVFILE.tmp" "$ENVFILE"
}

up() {
  mkdir -p "$DIR"
  install_missing
  local failed=0
  if start_zfs; then
    start_pool2 || { failed=1; log "no second pool: the replication tests will skip (or fail under DSG_REQUIRE_REAL=1)"; }
  else
    failed=1; log "ZFS unavailable: ZFS tests will skip (or fail under DSG_REQUIRE_REAL=1)"
  fi
  if start_sshd; then
    setup_replica_key || { failed=1; log "no replication key: the replication-over-ssh tests will skip (or fail under DSG_REQUIRE_REAL=1)"; }
  else
    failed=1; log "sshd unavailable: SSH tests will skip (or fail under DSG_REQUIRE_REAL=1)"
  fi
  if [ $failed = 0 ]; then setup_agent_user || { failed=1; log "no non-root agent user: its tests will skip (or fail under DSG_REQUIRE_REAL=1)"; }; fi
  setup_client_user || { failed=1; log "no non-root client user: its tests will skip (or fail under DSG_REQUIRE_REAL=1)"; }
  start_registry || { failed=1; log "no npm registry: the release tests will skip (or fail under DSG_REQUIRE_REAL=1)"; }
  write_env
  cat "$ENVFILE"
  # When the real parts are required, a setup that cannot give them is the
  # failure to report, not the hundred tests that would fail after it.
  if [ $failed = 1 ] && [ "${DSG_REQUIRE_REAL:-}" = 1 ]; then log "setup failed and DSG_REQUIRE_REAL=1"; return 1; fi
}

# A mount of ours whose FUSE requests zfs-fuse no longer answers (seen: one
# dataset's mount, the rest of the daemon fine). zpool destroy unmounts through
# it and waits forever.
stuck_mount() {
  local m
  for m in $(awk -v d="$DIR/mnt/" '$3 == "fuse.zfs" && index($2, d) == 1 {print $2}' /proc/mounts); do
    timeout 5 stat "$m" >/dev/null 2>&1 || { log "mount $m does not answer"; return 0; }
  done
  return 1
}

down() {
  if alive "$DIR/sshd.pid"; then kill "$(cat "$DIR/sshd.pid")"; log "sshd stopped"; fi
  rm -f "$DIR/sshd.pid"
  stop_registry
  # A daemon that no longer answers would make every destroy below wait out its
  # timeouts (30 tries each): stop it first; its pools' images go with it, and
  # the next `up` drops the pools it then lists as unusable.
  if alive "$DIR/zfs-fuse.pid" && { ! timeout 30 zpool list >/dev/null 2>&1 || stuck_mount; }; then
    log "zfs-fuse does not answer: stopping it before its pools"
    stop_daemon
  fi
  destroy_pool2 || true
  destroy_pool || true
  stop_daemon
  # the users stay (like $AGENT_USER); what up opened for them is closed again
  if [ -f "$DIR/opened-dirs" ]; then
    while IFS= read -r d; do [ -d "$d" ] && chmod o-x "$d"; done <"$DIR/opened-dirs"
    rm -f "$DIR/opened-dirs"
  fi
  rm -f "$ENVFILE" "$SUDOERS" "$DIR/client-user"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  env) cat "$ENVFILE" ;;
  diag) diag ;;
  *) echo "usage: testenv.sh up|down|env|diag" >&2; exit 2 ;;
esac
