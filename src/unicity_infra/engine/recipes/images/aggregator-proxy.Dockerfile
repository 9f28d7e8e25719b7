# TLS proxy in front of aggregator-go: nginx with ssl-manager's TLS and HAProxy
# registration, supervised by unicity_infra.container, plus the small server
# that publishes the genesis trust base at /.well-known/trust-base.json.
# 'unicity-infra images build aggregator' assembles the context (this file,
# image-setup.sh, unicity_infra/__init__.py and unicity_infra/container/),
# passes BASE_IMAGE and sets the labels, which also record the aggregator
# stack's pinned images. Works with the classic builder of Docker 20.10. No
# secret is passed as a build argument; keys reach the container as files at
# run time.

ARG BASE_IMAGE

FROM ${BASE_IMAGE}

# The trust-base server runs as the aggregator-proxy user. Its uid is the one
# the genesis volume belongs to, though it needs only read access.
COPY image-setup.sh /usr/local/lib/unicity-infra/image-setup.sh
RUN sh /usr/local/lib/unicity-infra/image-setup.sh install-missing \
        nginx:nginx-light tini:tini python3:python3 openssl:openssl \
        certbot:certbot curl:curl useradd:passwd \
    && sh /usr/local/lib/unicity-infra/image-setup.sh add-user aggproxy /nonexistent \
    && mkdir -p /etc/aggregator-config /var/www/acme-challenge/.well-known/acme-challenge /run/unicity

ENV PYTHONPATH=/opt/unicity-infra \
    PYTHONUNBUFFERED=1 \
    AGGREGATOR_CONFIG_DIR=/etc/aggregator-config

# The genesis volume is mounted read-only at /etc/aggregator-config by the
# stack; it is not a VOLUME here, so no anonymous volume hides a missing mount.
VOLUME ["/etc/letsencrypt"]
EXPOSE 80 443

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=2s --timeout=4s --start-period=10s --retries=3 \
    CMD ["python3", "-m", "unicity_infra.container.healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "python3", "-m", "unicity_infra.container.entrypoint"]
CMD ["aggregator-proxy"]

# The supervisor package changes most often, so it comes last: a rebuild
# after a code change reuses every layer above from the build cache.
COPY unicity_infra /opt/unicity-infra/unicity_infra

# Fail the build here, not at first start, when the supervisor package does not import.
RUN python3 -c "import unicity_infra.container.services.aggregator_proxy, unicity_infra.container.trust_base_server"
