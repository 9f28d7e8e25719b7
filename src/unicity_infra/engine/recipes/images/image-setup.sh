#!/bin/sh
# Build steps the wrapper Dockerfiles share. 'unicity-infra images build'
# copies this file into each build context. It runs under the base image's
# /bin/sh (dash on Debian), so it uses POSIX sh only.
#
#   image-setup.sh install-missing COMMAND:PACKAGE...
#       Install from the Debian archive the PACKAGE of each COMMAND that is
#       not on PATH. The offline base has every command, so there this step
#       never reaches a Debian mirror.
#   image-setup.sh add-user NAME HOME
#       Create the group and user NAME with uid and gid 1001, home HOME and no
#       login shell, unless they exist, and check their ids. Volumes the
#       services write to belong to 1001:1001.
set -eu

install_missing() {
    missing=""
    for pair in "$@"; do
        command -v "${pair%%:*}" > /dev/null 2>&1 || missing="$missing ${pair#*:}"
    done
    if [ -z "$missing" ]; then
        return 0
    fi
    echo "installing:$missing"
    apt-get update
    # $missing is split into one argument per package on purpose.
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
    rm -rf /var/lib/apt/lists/*
}

add_user() {
    name=$1
    home=$2
    getent group "$name" > /dev/null || groupadd --gid 1001 "$name"
    getent passwd "$name" > /dev/null || useradd --uid 1001 --gid 1001 --no-create-home \
        --home-dir "$home" --shell /usr/sbin/nologin "$name"
    ids="$(id -u "$name"):$(id -g "$name")"
    if [ "$ids" != "1001:1001" ]; then
        echo "user $name has uid:gid $ids in the base image; the wrapper images need 1001:1001" >&2
        exit 1
    fi
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
    install-missing) install_missing "$@" ;;
    add-user)
        if [ $# -ne 2 ]; then
            echo "usage: image-setup.sh add-user NAME HOME" >&2
            exit 2
        fi
        add_user "$1" "$2"
        ;;
    *)
        echo "usage: image-setup.sh install-missing COMMAND:PACKAGE... | add-user NAME HOME" >&2
        exit 2
        ;;
esac
