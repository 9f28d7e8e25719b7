# The local edge: HAProxy driven by the /v1/backends registration API, and
# Pebble as the ACME CA, standing in for a production host's HAProxy and
# Let's Encrypt. 'unicity-infra images build edge' assembles the context
# (this file, image-setup.sh, unicity_infra/__init__.py and
# unicity_infra/edge/), passes BASE_IMAGE and sets the labels. The API key,
# when one is required, arrives as a file at run time.

ARG BASE_IMAGE

FROM ${BASE_IMAGE}

COPY image-setup.sh /usr/local/lib/unicity-infra/image-setup.sh
RUN sh /usr/local/lib/unicity-infra/image-setup.sh install-missing \
        haproxy:haproxy pebble:pebble tini:tini python3:python3 openssl:openssl \
    && mkdir -p /var/lib/unicity-edge

ENV PYTHONPATH=/opt/unicity-infra \
    PYTHONUNBUFFERED=1 \
    EDGE_STATE_DIR=/var/lib/unicity-edge

VOLUME ["/var/lib/unicity-edge"]
# 80 HTTP by Host, 443 TLS passthrough by SNI, 8404 registration API, 14000 ACME directory.
EXPOSE 80 443 8404 14000

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=2s --timeout=3s --start-period=5s --retries=5 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8404/v1/health', timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "python3", "-m", "unicity_infra.edge.local"]

COPY unicity_infra /opt/unicity-infra/unicity_infra
RUN haproxy -v > /dev/null && command -v pebble pebble-challtestsrv > /dev/null \
    && python3 -c "import unicity_infra.edge.api"
