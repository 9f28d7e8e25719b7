#!/usr/bin/env bash
# From a fresh machine to a healthy relay: install, build the images without a
# registry, run the relay with a self-signed certificate on 127.0.0.1:7443 and
# probe it. Set UNICITY_INFRA_ONLINE=1 to pull upstream images instead.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
offline=(--offline)
[[ "${UNICITY_INFRA_ONLINE:-}" == 1 ]] && offline=()
unicity-infra images build relay "${offline[@]}"
unicity-infra run relay --no-haproxy --ssl-test-mode --domain relay.localhost --publish 127.0.0.1:7443
