#!/bin/sh
exec unicity-infra run aggregator "$@"
