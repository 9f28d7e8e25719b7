#!/bin/sh
# Run the faucet wrapper image with unicity-infra; every argument goes to 'run faucet'.
exec unicity-infra run faucet "$@"
