# js-faucet behind nginx with ssl-manager's TLS and HAProxy registration,
# supervised by unicity_infra.container, which serves the faucet's discovery
# document. 'unicity-infra images build faucet' assembles the context (this
# file, image-setup.sh, unicity_infra/__init__.py and
# unicity_infra/container/), passes BASE_IMAGE and FAUCET_IMAGE and sets the
# labels. Works with the classic builder of Docker 20.10. No secret is passed
# as a build argument: operator secrets reach the container as files under
# /run/secrets at run time, and the supervisor exports them to the faucet only.

ARG BASE_IMAGE
ARG FAUCET_IMAGE

FROM ${FAUCET_IMAGE} AS faucet

FROM ${BASE_IMAGE}

# Node.js comes from Debian's own packages. /data is the identity volume:
# wallet and tokens belong to the faucet user, the generated tenant file
# (/data/tenant.json) to root, with mode 0600.
COPY image-setup.sh /usr/local/lib/unicity-infra/image-setup.sh
RUN sh /usr/local/lib/unicity-infra/image-setup.sh install-missing \
        nginx:nginx-light tini:tini python3:python3 openssl:openssl \
        certbot:certbot curl:curl node:nodejs useradd:passwd \
    && sh /usr/local/lib/unicity-infra/image-setup.sh add-user faucet /data/wallet \
    && mkdir -p /data/wallet /data/tokens /var/www/acme-challenge/.well-known/acme-challenge /run/unicity \
    && chown 1001:1001 /data/wallet /data/tokens \
    && chmod 0700 /data/wallet /data/tokens

# NOTE: js-faucet's image is built on node:22-alpine. A native Node addon in
# its node_modules, compiled against musl, would not load on this glibc base;
# check 'docker logs' for faucet_acp_startup_failed after changing FAUCET_IMAGE.
COPY --from=faucet --chown=0:0 /app /app

ENV PYTHONPATH=/opt/unicity-infra \
    PYTHONUNBUFFERED=1 \
    FAUCET_APP_DIR=/app \
    FAUCET_NODE_BIN=/usr/bin/node \
    UNICITY_DATA_DIR=/data/wallet \
    UNICITY_TOKENS_DIR=/data/tokens

VOLUME ["/etc/letsencrypt", "/data"]
EXPOSE 80 443

STOPSIGNAL SIGTERM
# Healthy only while the faucet process of this boot has announced its chain
# pubkey, as the discovery document reports it, not merely while nginx serves.
HEALTHCHECK --interval=2s --timeout=4s --start-period=10s --retries=3 \
    CMD ["python3", "-m", "unicity_infra.container.healthcheck"]
WORKDIR /app
ENTRYPOINT ["/usr/bin/tini", "--", "python3", "-m", "unicity_infra.container.entrypoint"]
CMD ["faucet"]

# The supervisor package changes most often, so it comes last: a rebuild
# after a code change reuses every layer above from the build cache.
COPY unicity_infra /opt/unicity-infra/unicity_infra

# Fail the build here, not at first start, when node cannot parse the
# faucet's entry script or the supervisor package does not import.
RUN node --check /app/dist/acp-adapter/main.js \
    && python3 -c "import unicity_infra.container.services.faucet"
