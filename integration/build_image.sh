#!/usr/bin/env bash
# One command: build (or reuse) the gossipmq node image and print its tag.
#   export GOSSIPMQ_IMAGE=$(bash integration/build_image.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python3 -m integration.image "$@"
