# Nostr relay behind nginx with ssl-manager's TLS and HAProxy registration,
# supervised by unicity_infra.container. Built by 'unicity-infra images build',
# which assembles the context: this file plus unicity_infra/__init__.py and
# unicity_infra/container/. Works with the classic builder of Docker 20.10.
# No secret is passed as a build argument; keys and passwords reach the
# container as files at run time.

ARG BASE_IMAGE=ghcr.io/unicitynetwork/ssl-manager:latest
ARG RELAY_IMAGE=ghcr.io/unicitynetwork/unicity-tokens-relay:sha-1e1b544

FROM ${RELAY_IMAGE} AS relay

FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG RELAY_IMAGE
ARG VERSION=0.0.0
ARG OFFLINE=false
ARG SOURCE_URL=

# Install only the programs the base lacks. The offline base has them all,
# so this step never reaches a Debian mirror there.
RUN set -eu; \
    missing=""; \
    for pair in nginx:nginx-light tini:tini python3:python3 openssl:openssl \
                certbot:certbot curl:curl sqlite3:sqlite3 useradd:passwd; do \
        command -v "${pair%%:*}" > /dev/null 2>&1 || missing="$missing ${pair#*:}"; \
    done; \
    if [ -n "$missing" ]; then \
        echo "installing:$missing"; \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/*; \
    fi

RUN set -eu; \
    getent group relay > /dev/null || groupadd --gid 1001 relay; \
    getent passwd relay > /dev/null || useradd --uid 1001 --gid 1001 --no-create-home \
        --home-dir /var/lib/relay --shell /usr/sbin/nologin relay; \
    test "$(id -u relay):$(id -g relay)" = "1001:1001"; \
    mkdir -p /var/lib/relay /var/www/acme-challenge/.well-known/acme-challenge /run/unicity; \
    chown 1001:1001 /var/lib/relay

COPY --from=relay /usr/src/app/nostr-rs-relay /usr/local/bin/nostr-rs-relay

ENV PYTHONPATH=/opt/unicity-infra \
    PYTHONUNBUFFERED=1 \
    RELAY_DATA_DIR=/var/lib/relay \
    RELAY_PORT=8080

VOLUME ["/etc/letsencrypt", "/var/lib/relay"]
EXPOSE 80 443

LABEL org.opencontainers.image.title="unicity-infra relay" \
      org.opencontainers.image.description="nostr-rs-relay behind nginx with TLS from certbot and HAProxy registration" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.unicity.infra.upstream.relay="${RELAY_IMAGE}" \
      org.unicity.infra.upstream.base="${BASE_IMAGE}" \
      org.unicity.infra.offline="${OFFLINE}"

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 \
    CMD ["python3", "-m", "unicity_infra.container.healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "python3", "-m", "unicity_infra.container.entrypoint"]
CMD ["relay"]

# The supervisor package changes most often, so it comes last: a rebuild
# after a code change reuses every layer above from the build cache.
COPY unicity_infra /opt/unicity-infra/unicity_infra

# Fail the build here, not at first start, when the relay binary lacks a
# library in this base or the supervisor package does not import.
RUN nostr-rs-relay --help > /dev/null \
    && python3 -c "import unicity_infra.container"
