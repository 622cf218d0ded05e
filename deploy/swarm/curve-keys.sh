#!/bin/sh
# One CURVE key pair per task slot, for deploy/swarm/curve.yaml (member ids gossipmq-1 ... gossipmq-N).
#
#   sh deploy/swarm/curve-keys.sh [SLOTS [DIR]]        # default: 7 slots into deploy/swarm/keys
#
# Existing pairs are kept (re-running never rotates a key). Uses `gossipctl` when it is on PATH,
# otherwise the image ($GOSSIPMQ_IMAGE, default gossipmq:latest) with the directory mounted.
# The files become Docker secrets when the stack is deployed with curve.yaml; keep DIR private.
set -eu
slots="${1:-7}"
dir="${2:-$(dirname "$0")/keys}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
chmod 700 "$dir"

keygen() {  # keygen NAME
    if command -v gossipctl >/dev/null 2>&1; then
        gossipctl keygen --out "$dir" --name "$1" >/dev/null
    else
        docker run --rm --user "$(id -u):$(id -g)" --volume "$dir:/keys" --entrypoint gossipctl \
            "${GOSSIPMQ_IMAGE:-gossipmq:latest}" keygen --out /keys --name "$1" >/dev/null
    fi
}

i=1
while [ "$i" -le "$slots" ]; do
    name="gossipmq-$i"
    if [ -f "$dir/$name.key_secret" ] && [ -f "$dir/$name.key" ]; then
        echo "kept    $dir/$name.key"
    else
        keygen "$name"
        echo "created $dir/$name.key (+ .key_secret)"
    fi
    i=$((i + 1))
done
