#!/bin/sh
exec unicity-infra run relay "$@"
