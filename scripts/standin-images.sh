#!/usr/bin/env bash
# Build the test stand-ins for the upstream images no registry provides here
# (bft-core, mongo, aggregator-go, curl, the faucet) and our wrapper images
# (relay, aggregator-proxy, faucet; rebuilt after each new commit), then print the variables that
# make 'run' and 'up' use them:
#
#     eval "$(bash scripts/standin-images.sh)"
#     unicity-infra up
#
# The stand-ins speak the same ports, files and log lines as the real images but
# are NOT the real services: the aggregator certifies nothing and the faucet
# mints nothing. Use them to try the tool and in tests, never for a deployment.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'PYTHON'
import os
import shlex
import sys

sys.path.insert(0, ".")
from tests.fixtures.faucet_standin import build_faucet_standin
from tests.fixtures.standins import build_aggregator_standins
from unicity_infra.engine.images import FAUCET_IMAGE_ENV, build_images

from unicity_infra.terminal import TerminalProgress, make_console

# stdout carries the export lines for eval; progress goes to stderr.
progress = TerminalProgress(make_console(stderr=True))
progress.stage("Stand-ins of the upstream images")
images = build_aggregator_standins()
faucet_upstream = build_faucet_standin()
os.environ[FAUCET_IMAGE_ENV] = faucet_upstream
progress.note("stand-ins ready: " + ", ".join(sorted({*images.values(), faucet_upstream})))
build_images(["relay", "aggregator", "faucet"], offline=True, progress=progress)
progress.close()
overrides = " ".join(f"{key}={images[key]}" for key in ("bft-core", "mongo", "aggregator-go", "curl"))
print(f"export UNICITY_INFRA_IMAGE_OVERRIDES={shlex.quote(overrides)}")
print(f"export {FAUCET_IMAGE_ENV}={shlex.quote(faucet_upstream)}")
PYTHON
