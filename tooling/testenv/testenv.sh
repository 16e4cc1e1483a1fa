#!/usr/bin/env bash
# Brings up the real parts dsg's tests use, on a Debian machine, as root:
#   - a zfs-fuse daemon and a pool on a sparse file   (DSG_TEST_POOL, default dsgtest, 512M)
#   - an sshd on 127.0.0.1 on a free port, with a host key and a user key made for this run
# Usage: testenv.sh up | down | env
# `up` is idempotent; it writes $DSG_TESTENV_DIR/env (shell `export` lines) and prints it.
# `down` stops only what `up` started, by the pids it recorded — never by process name.
set -euo pipefail

DIR=${DSG_TESTENV_DIR:-/tmp/dsg-testenv}
POOL=${DSG_TEST_POOL:-dsgtest}
POOL_SIZE=${DSG_TEST_POOL_SIZE:-512M}
ENVFILE="$DIR/env"

log() { printf 'testenv: %s\n' "$*" >&2; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_missing() {
  local need=()
  command -v zfs-fuse >/dev/null || need+=(zfs-fuse)
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh-keygen >/dev/null || need+=(openssh-client)
  command -v rsync >/dev/null || need+=(rsync)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

start_zfs() {
  if zpool list >/dev/null 2>&1; then
    log "zfs-fuse already answering"
  else
    [ -e /dev/fuse ] || { log "no /dev/fuse: zfs-fuse cannot run here"; return 1; }
    log "starting zfs-fuse"
    # --no-daemon keeps it our child so we know its pid; setsid detaches it from this shell.
    setsid zfs-fuse --no-daemon >"$DIR/zfs-fuse.log" 2>&1 < /dev/null &
    echo $! >"$DIR/zfs-fuse.pid"
    for _ in $(seq 1 50); do zpool list >/dev/null 2>&1 && break; sleep 0.2; done
    zpool list >/dev/null 2>&1 || { log "zfs-fuse did not answer; see $DIR/zfs-fuse.log"; return 1; }
  fi
  if zpool list -H "$POOL" >/dev/null 2>&1; then
    log "pool $POOL present"
  elif [ -f "$DIR/$POOL.img" ] && zpool import -d "$DIR" "$POOL" >/dev/null 2>&1; then
    log "pool $POOL imported"
  else
    rm -f "$DIR/$POOL.img"
    truncate -s "$POOL_SIZE" "$DIR/$POOL.img"
    mkdir -p "$DIR/mnt"
    zpool create -f -m "$DIR/mnt/$POOL" "$POOL" "$DIR/$POOL.img" 2>/dev/null
    touch "$DIR/pool.created"
    log "pool $POOL created ($POOL_SIZE on $DIR/$POOL.img)"
  fi
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
SetEnv PATH=$(dirname "$(command -v node)"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CONF
  /usr/sbin/sshd -f "$DIR/ssh/sshd_config" -E "$DIR/sshd.log"
  for _ in $(seq 1 50); do alive "$DIR/sshd.pid" && break; sleep 0.1; done
  alive "$DIR/sshd.pid" || { log "sshd did not start; see $DIR/sshd.log"; return 1; }
  echo "$port" >"$DIR/ssh/port"
  printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$DIR/ssh/host_ed25519.pub")" >"$DIR/ssh/known_hosts"
  log "sshd on 127.0.0.1:$port"
}

write_env() {
  {
    echo "export DSG_TESTENV_DIR=$DIR"
    if zpool list -H "$POOL" >/dev/null 2>&1; then
      echo "export DSG_TEST_POOL=$POOL"
      echo "export DSG_TEST_POOL_MOUNT=$(zfs get -H -o value mountpoint "$POOL")"
    fi
    if alive "$DIR/sshd.pid"; then
      echo "export DSG_TEST_SSH_HOST=127.0.0.1"
      echo "export DSG_TEST_SSH_PORT=$(cat "$DIR/ssh/port")"
      echo "export DSG_TEST_SSH_USER=$(id -un)"
      echo "export DSG_TEST_SSH_KEY=$DIR/ssh/id_ed25519"
      echo "export DSG_TEST_SSH_KNOWN_HOSTS=$DIR/ssh/known_hosts"
      echo "export DSG_TEST_SSH_HOST_PUB=$DIR/ssh/host_ed25519.pub"
    fi
  } >"$ENVFILE.tmp"
  mv "$ENVFILE.tmp" "$ENVFILE"
}

up() {
  mkdir -p "$DIR"
  install_missing
  start_zfs || log "ZFS unavailable: ZFS tests will skip (or fail under DSG_REQUIRE_REAL=1)"
  start_sshd || log "sshd unavailable: SSH tests will skip (or fail under DSG_REQUIRE_REAL=1)"
  write_env
  cat "$ENVFILE"
}

down() {
  if alive "$DIR/sshd.pid"; then kill "$(cat "$DIR/sshd.pid")"; log "sshd stopped"; fi
  rm -f "$DIR/sshd.pid"
  if [ -f "$DIR/pool.created" ] && zpool list -H "$POOL" >/dev/null 2>&1; then
    # zfs-fuse reports "pool is busy" for a moment after the last unmount: retry
    for _ in $(seq 1 30); do zpool destroy -f "$POOL" 2>/dev/null && break; sleep 0.5; done
    if zpool list -H "$POOL" >/dev/null 2>&1; then log "could not destroy pool $POOL"; else
      log "pool $POOL destroyed"; rm -f "$DIR/pool.created" "$DIR/$POOL.img"; fi
  fi
  if alive "$DIR/zfs-fuse.pid"; then
    kill "$(cat "$DIR/zfs-fuse.pid")"
    for _ in $(seq 1 50); do alive "$DIR/zfs-fuse.pid" || break; sleep 0.1; done
    log "zfs-fuse stopped"
  fi
  rm -f "$DIR/zfs-fuse.pid" "$ENVFILE"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  env) cat "$ENVFILE" ;;
  *) echo "usage: testenv.sh up|down|env" >&2; exit 2 ;;
esac
