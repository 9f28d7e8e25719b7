# Nostr relay behind nginx with ssl-manager's TLS and HAProxy registration,
# supervised by unicity_infra.container. 'unicity-infra images build relay'
# assembles the context (this file, image-setup.sh, unicity_infra/__init__.py
# and unicity_infra/container/), passes BASE_IMAGE and RELAY_IMAGE, whose
# pins live in unicity_infra.settings, and sets the OCI and upstream labels.
# 'unicity-infra images context relay DIR' writes the same context for other
# builders. Works with the classic builder of Docker 20.10. No secret is
# passed as a build argument; keys and passwords reach the container as files
# at run time.

ARG BASE_IMAGE
ARG RELAY_IMAGE

FROM ${RELAY_IMAGE} AS relay

FROM ${BASE_IMAGE}

COPY image-setup.sh /usr/local/lib/unicity-infra/image-setup.sh
RUN sh /usr/local/lib/unicity-infra/image-setup.sh install-missing \
        nginx:nginx-light tini:tini python3:python3 openssl:openssl \
        certbot:certbot curl:curl sqlite3:sqlite3 useradd:passwd \
    && sh /usr/local/lib/unicity-infra/image-setup.sh add-user relay /var/lib/relay \
    && mkdir -p /var/lib/relay /var/www/acme-challenge/.well-known/acme-challenge /run/unicity \
    && chown 1001:1001 /var/lib/relay

COPY --from=relay /usr/src/app/nostr-rs-relay /usr/local/bin/nostr-rs-relay

ENV PYTHONPATH=/opt/unicity-infra \
    PYTHONUNBUFFERED=1 \
    RELAY_DATA_DIR=/var/lib/relay \
    RELAY_PORT=8080

VOLUME ["/etc/letsencrypt", "/var/lib/relay"]
EXPOSE 80 443

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=2s --timeout=4s --start-period=10s --retries=3 \
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
