# The local edge: HAProxy driven by the /v1/backends registration API, and
# Pebble as the ACME CA, standing in for a production host's HAProxy and
# Let's Encrypt. Built by 'unicity-infra images build edge', which assembles
# the context: this file plus unicity_infra/__init__.py and unicity_infra/edge/.
# The API key, when one is required, arrives as a file at run time.

ARG BASE_IMAGE=ghcr.io/unicitynetwork/ssl-manager:latest

FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG VERSION=0.0.0
ARG OFFLINE=false
ARG SOURCE_URL=

# Install only the programs the base lacks. The offline base has them all,
# so this step never reaches a Debian mirror there.
RUN set -eu; \
    missing=""; \
    for pair in haproxy:haproxy pebble:pebble tini:tini python3:python3 openssl:openssl; do \
        command -v "${pair%%:*}" > /dev/null 2>&1 || missing="$missing ${pair#*:}"; \
    done; \
    if [ -n "$missing" ]; then \
        echo "installing:$missing"; \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    mkdir -p /var/lib/unicity-edge

ENV PYTHONPATH=/opt/unicity-infra \
    PYTHONUNBUFFERED=1 \
    EDGE_STATE_DIR=/var/lib/unicity-edge

VOLUME ["/var/lib/unicity-edge"]
# 80 HTTP by Host, 443 TLS passthrough by SNI, 8404 registration API, 14000 ACME directory.
EXPOSE 80 443 8404 14000

LABEL org.opencontainers.image.title="unicity-infra edge" \
      org.opencontainers.image.description="HAProxy with the /v1/backends registration API and a Pebble ACME test CA" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.unicity.infra.upstream.base="${BASE_IMAGE}" \
      org.unicity.infra.offline="${OFFLINE}"

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=2s --timeout=3s --start-period=5s --retries=5 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8404/v1/health', timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "python3", "-m", "unicity_infra.edge.local"]

COPY unicity_infra /opt/unicity-infra/unicity_infra
RUN haproxy -v > /dev/null && command -v pebble pebble-challtestsrv > /dev/null \
    && python3 -c "import unicity_infra.edge.api"
