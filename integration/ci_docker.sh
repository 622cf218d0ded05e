#!/usr/bin/env bash
# Make sure a Docker engine answers (for .ci/run before `pytest integration -m integration`).
# Idempotent: does nothing when `docker info` already works. Otherwise installs docker.io
# (Debian) when dockerd is absent, starts dockerd in the background with a pidfile and a
# log, and polls `docker info` for up to 60 s. Also installs debootstrap and iptables
# (needed by integration/images/build_base.sh and the partition faults) when absent.
# Env: GOSSIPMQ_DOCKERD_DIR (default /var/tmp/gossipmq-dockerd) holds dockerd.pid and dockerd.log;
#      DOCKER_HOST=unix:///path makes dockerd listen there (default socket otherwise);
#      GOSSIPMQ_DOCKERD_ARGS adds dockerd flags (e.g. --data-root DIR).
# Stop it later with: kill "$(cat /var/tmp/gossipmq-dockerd/dockerd.pid)"
set -euo pipefail

state="${GOSSIPMQ_DOCKERD_DIR:-/var/tmp/gossipmq-dockerd}"
pidfile="$state/dockerd.pid"
logfile="$state/dockerd.log"
log() { echo "[ci_docker] $*" >&2; }

sudo_() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [[ $apt_updated -eq 0 ]]; then sudo_ apt-get update -qq; apt_updated=1; fi
  sudo_ apt-get install -y -qq --no-install-recommends "$@"
}

missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker >/dev/null 2>&1 || missing+=(docker.io)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  # shellcheck disable=SC2207
  uniq=($(printf '%s\n' "${missing[@]}" | sort -u))
  log "installing: ${uniq[*]}"
  apt_install "${uniq[@]}"
fi

if docker info >/dev/null 2>&1; then
  log "docker engine already answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
  exit 0
fi

mkdir -p "$state"
if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "dockerd already started (pid $(cat "$pidfile")), waiting for it"
elif other="$(pgrep -x dockerd | head -n1)" && [[ -n "$other" && "${GOSSIPMQ_DOCKERD_ARGS:-}" != *--exec-root* ]]; then
  # Never start a second dockerd on the same exec-root/data-root: it would delete the
  # running daemon's containerd socket. Most likely DOCKER_HOST points elsewhere.
  log "a dockerd is already running (pid $other) but \`docker info\` fails with DOCKER_HOST='${DOCKER_HOST:-}';"
  log "not starting a second one. Unset/fix DOCKER_HOST, or pass GOSSIPMQ_DOCKERD_ARGS with its own --exec-root and --data-root."
  exit 1
else
  rm -f "$pidfile"
  log "starting dockerd (log: $logfile)"
  # setsid: keep dockerd alive after this script's shell exits
  args=(--pidfile "$pidfile")
  if [[ "${DOCKER_HOST:-}" == unix://* ]]; then args+=(--host "$DOCKER_HOST"); fi
  # shellcheck disable=SC2206
  args+=(${GOSSIPMQ_DOCKERD_ARGS:-})
  sudo_ setsid dockerd "${args[@]}" >>"$logfile" 2>&1 < /dev/null &
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "docker engine up ($(docker info --format '{{.ServerVersion}}' 2>/dev/null), pid $(cat "$pidfile" 2>/dev/null || echo '?'))"
    exit 0
  fi
  sleep 1
done
log "docker engine did not answer within 60 s; last lines of $logfile:"
tail -n 30 "$logfile" >&2 || true
exit 1
