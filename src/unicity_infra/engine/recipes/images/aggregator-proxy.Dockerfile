# TLS proxy in front of aggregator-go: nginx with ssl-manager's TLS and HAProxy
# registration, supervised by unicity_infra.container, plus the small server
# that publishes the genesis trust base at /.well-known/trust-base.json.
# Built by 'unicity-infra images build aggregator', which assembles the
# context: this file plus unicity_infra/__init__.py and unicity_infra/container/.
# Works with the classic builder of Docker 20.10. No secret is passed as a
# build argument; keys reach the container as files at run time.

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
    for pair in nginx:nginx-light tini:tini python3:python3 openssl:openssl \
                certbot:certbot curl:curl useradd:passwd; do \
        command -v "${pair%%:*}" > /dev/null 2>&1 || missing="$missing ${pair#*:}"; \
    done; \
    if [ -n "$missing" ]; then \
        echo "installing:$missing"; \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/*; \
    fi

# The trust-base server runs as this unprivileged user. Its uid is the one
# the genesis volume belongs to, though it needs only read access.
RUN set -eu; \
    getent group aggproxy > /dev/null || groupadd --gid 1001 aggproxy; \
    getent passwd aggproxy > /dev/null || useradd --uid 1001 --gid 1001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin aggproxy; \
    test "$(id -u aggproxy):$(id -g aggproxy)" = "1001:1001"; \
    mkdir -p /etc/aggregator-config /var/www/acme-challenge/.well-known/acme-challenge /run/unicity

ENV PYTHONPATH=/opt/unicity-infra \
    PYTHONUNBUFFERED=1 \
    AGGREGATOR_CONFIG_DIR=/etc/aggregator-config

# The genesis volume is mounted read-only at /etc/aggregator-config by the
# stack; it is not a VOLUME here, so no anonymous volume hides a missing mount.
VOLUME ["/etc/letsencrypt"]
EXPOSE 80 443

LABEL org.opencontainers.image.title="unicity-infra aggregator-proxy" \
      org.opencontainers.image.description="nginx in front of aggregator-go with TLS from certbot, HAProxy registration and the genesis trust base" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.unicity.infra.upstream.base="${BASE_IMAGE}" \
      org.unicity.infra.offline="${OFFLINE}"

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 \
    CMD ["python3", "-m", "unicity_infra.container.healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "python3", "-m", "unicity_infra.container.entrypoint"]
CMD ["aggregator-proxy"]

# The supervisor package changes most often, so it comes last: a rebuild
# after a code change reuses every layer above from the build cache.
COPY unicity_infra /opt/unicity-infra/unicity_infra

# Fail the build here, not at first start, when the supervisor package does not import.
RUN python3 -c "import unicity_infra.container.services.aggregator_proxy, unicity_infra.container.trust_base_server"
