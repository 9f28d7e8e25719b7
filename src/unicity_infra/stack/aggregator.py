"""The aggregator stack as specs: BFT genesis, BFT root, MongoDB, aggregator-go and its TLS proxy.

Genesis runs as one-shot containers that share the genesis volume:

1. ``genesis-prepare`` (a Python image, as root) gives the volume to uid 1001,
   the user of the bft-core and aggregator-go images. It also checks every
   genesis file already there. A corrupt or half-written genesis then stops
   the stack with a message instead of being skipped over.
2. ``bft-genesis`` (bft-core, busybox ``sh``) runs each ``ubft`` step whose
   output file is missing: root identity, trust base, its signature, the
   aggregator's identity and its shard configuration.
3. ``genesis-verify`` (the Python image again) checks the finished genesis and
   writes ``bootstrap-addresses``, the libp2p address of the root node taken
   from ``trust-base.json`` by a JSON parser. Neither the bft-core image nor
   the Alpine aggregator-go image has a JSON parser, and the host cannot read
   the volume, so this step runs in an image with python3 (by default the
   ssl-manager base the wrapper images start from). The aggregator's
   entrypoint exports the file's content as ``BFT_BOOTSTRAP_ADDRESSES``.
4. ``bft-config-upload`` (curl) PUTs the shard configuration to the root's RPC
   server and fails on any non-2xx reply.

The MongoDB healthcheck initiates the one-member replica set when it is not
initiated yet and passes only once the node is PRIMARY.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from dataclasses import replace

from unicity_infra.errors import SettingsError
from unicity_infra.settings import UPSTREAM_IMAGES, RunSettings, wrapper_image
from unicity_infra.stack.plan import (
    StackPlan,
    common_labels,
    default_container_name,
    direct_network_name,
    secret_files,
    wrapper_env,
)
from unicity_infra.stack.spec import (
    LABEL_ENDPOINT,
    LABEL_PREFIX,
    LABEL_ROLE,
    Condition,
    ContainerSpec,
    HealthCheck,
    NetworkSpec,
    PortBinding,
    VolumeMount,
    VolumeSpec,
)

__all__ = [
    "AGGREGATOR_IMAGES",
    "AGGREGATOR_PORT",
    "DEFAULT_NETWORK_ID",
    "GENESIS_TOOL_SCRIPT",
    "LABEL_COMPONENT",
    "PARTITION_ID",
    "SHARD_CONF_FILE",
    "aggregator_endpoint",
    "aggregator_plan",
]

logger = logging.getLogger(__name__)

# Images of the aggregator stack, by the key aggregator_plan's IMAGES
# overrides. The upstream pins live in settings.UPSTREAM_IMAGES.
AGGREGATOR_IMAGES: dict[str, str] = {
    "bft-core": UPSTREAM_IMAGES["bft-core"],
    "mongo": UPSTREAM_IMAGES["mongo"],
    "aggregator-go": UPSTREAM_IMAGES["aggregator-go"],
    "curl": UPSTREAM_IMAGES["curl"],
    # Runs the genesis checks: any image with python3 3.9 or later and chown. Our
    # proxy image has both and is present wherever the stack runs, so no extra pull.
    "genesis-tools": wrapper_image("aggregator-proxy"),
    "aggregator-proxy": wrapper_image("aggregator-proxy"),
}

LABEL_COMPONENT = f"{LABEL_PREFIX}.component"

SERVICE = "aggregator"
DEFAULT_NETWORK_ID = 3
PARTITION_ID = 7
SHARD_CONF_FILE = f"shard-conf-{PARTITION_ID}_0.json"
BOOTSTRAP_ADDRESSES_FILE = "bootstrap-addresses"
UPLOAD_MARKER_FILE = f"shard-conf-{PARTITION_ID}_0.uploaded"
# The bft-core and aggregator-go images run as this user and group.
BFT_UID = 1001

AGGREGATOR_PORT = 3000
BFT_P2P_PORT = 8000
BFT_RPC_PORT = 8002
MONGO_PORT = 27017
REPLICA_SET = "rs0"

GENESIS_DIR = "/genesis"
AGGREGATOR_CONFIG_DIR = "/app/bft-config"
PROXY_CONFIG_DIR = "/etc/aggregator-config"
MONGO_DATA_DIR = "/data/db"
CERTIFICATE_DIR = "/etc/letsencrypt"

# Runs with python3 -c in the genesis-tools image, so it may use only the
# standard library. Subcommands: "prepare" before the ubft steps and "verify"
# after them; both exit 1 and list every problem when a file is invalid.
GENESIS_TOOL_SCRIPT = r'''
import argparse
import json
import os
import re
import sys

BASE58_ID = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{20,128}$")
COMPRESSED_KEY = re.compile(r"^0x0[23][0-9a-fA-F]{64}$")
PRIVATE_KEY = re.compile(r"^0x[0-9a-fA-F]{64}$")
SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")


class Genesis:
    """The genesis directory and the problems found in it so far."""

    def __init__(self, root, network_id, shard_conf):
        self.root = root
        self.network_id = network_id
        self.shard_conf = shard_conf
        self.problems = []

    def path(self, name):
        return os.path.join(self.root, name)

    def exists(self, name):
        return os.path.isfile(self.path(name))

    def problem(self, name, text):
        self.problems.append(name + ": " + text)

    def load(self, name):
        """Return the parsed JSON object in NAME, or None after recording why it is unusable."""
        try:
            with open(self.path(name), "rb") as handle:
                value = json.loads(handle.read().decode("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            self.problem(name, "cannot be read (" + str(exc) + ")")
            return None
        except ValueError as exc:
            self.problem(name, "is not valid JSON (" + str(exc) + ")")
            return None
        if not isinstance(value, dict):
            self.problem(name, "expected a JSON object, found " + type(value).__name__)
            return None
        return value


def check_node(genesis, name, node, where):
    """Check a node record: nodeId, sigKey and stake, as in node-info.json and trust bases."""
    if not isinstance(node, dict):
        genesis.problem(name, where + " is not a JSON object")
        return None
    node_id = node.get("nodeId")
    if not isinstance(node_id, str) or not BASE58_ID.match(node_id):
        genesis.problem(name, where + ".nodeId is not a libp2p peer id: " + repr(node_id))
        node_id = None
    if not isinstance(node.get("sigKey"), str) or not COMPRESSED_KEY.match(node["sigKey"]):
        genesis.problem(name, where + ".sigKey is not a 0x-hex compressed secp256k1 key")
    stake = node.get("stake")
    if isinstance(stake, bool) or not isinstance(stake, int) or stake < 1:
        genesis.problem(name, where + ".stake is not a positive integer: " + repr(stake))
    return node_id


def check_identity(genesis, home):
    """Check HOME/keys.json and HOME/node-info.json; return the node id, or None when absent or broken."""
    keys_name = home + "/keys.json"
    info_name = home + "/node-info.json"
    has_keys, has_info = genesis.exists(keys_name), genesis.exists(info_name)
    if not has_keys and not has_info:
        return None
    if has_keys != has_info:
        missing = info_name if has_keys else keys_name
        genesis.problem(missing, "missing while the other identity file of " + home + "/ exists")
        return None
    keys = genesis.load(keys_name)
    if keys is not None:
        for key_name in ("sigKey", "authKey"):
            key = keys.get(key_name)
            if not isinstance(key, dict) or not PRIVATE_KEY.match(str(key.get("privateKey", ""))):
                genesis.problem(keys_name, key_name + ".privateKey is not a 0x-hex 32-byte key")
    info = genesis.load(info_name)
    return None if info is None else check_node(genesis, info_name, info, "node-info")


def check_trust_base(genesis, root_id, must_be_signed):
    """Check trust-base.json against the network id and the root identity; return its root node ids."""
    name = "trust-base.json"
    if not genesis.exists(name):
        return []
    if root_id is None:
        genesis.problem(name, "present, but the root identity in root/ is missing or invalid")
    trust_base = genesis.load(name)
    if trust_base is None:
        return []

    if trust_base.get("networkId") != genesis.network_id:
        genesis.problem(name, "networkId is " + repr(trust_base.get("networkId"))
                        + ", expected " + str(genesis.network_id))
    nodes = trust_base.get("rootNodes")
    if not isinstance(nodes, list) or not nodes:
        genesis.problem(name, "rootNodes is not a non-empty list")
        return []
    node_ids = [check_node(genesis, name, node, "rootNodes[" + str(index) + "]") for index, node in enumerate(nodes)]

    threshold = trust_base.get("quorumThreshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= len(nodes):
        genesis.problem(name, "quorumThreshold " + repr(threshold) + " is not between 1 and " + str(len(nodes)))
    if root_id is not None and root_id not in node_ids:
        genesis.problem(name, "rootNodes does not list the root node " + root_id + " of root/node-info.json")

    signatures = trust_base.get("signatures")
    if not isinstance(signatures, dict):
        genesis.problem(name, "signatures is not a JSON object")
    elif must_be_signed and root_id is not None:
        signature = signatures.get(root_id)
        if not isinstance(signature, str) or not SIGNATURE.match(signature):
            genesis.problem(name, "carries no 65-byte signature of the root node " + root_id)
    return [node_id for node_id in node_ids if node_id]


def check_signed_copy(genesis, root_id):
    """Check root/trust-base-signed.json, the copy bft-genesis writes after signing."""
    name = "root/trust-base-signed.json"
    if not genesis.exists(name):
        return False
    try:
        with open(genesis.path(name), "rb") as copy, open(genesis.path("trust-base.json"), "rb") as original:
            same = copy.read() == original.read()
    except OSError as exc:
        genesis.problem(name, "cannot be compared with trust-base.json (" + str(exc) + ")")
        return True
    if not same:
        genesis.problem(name, "differs from trust-base.json, so the trust base changed after it was signed")
    return True


def check_shard_conf(genesis, partition_id, aggregator_id):
    name = genesis.shard_conf
    if not genesis.exists(name):
        return
    if aggregator_id is None:
        genesis.problem(name, "present, but the aggregator identity in aggregator/ is missing or invalid")
    conf = genesis.load(name)
    if conf is None:
        return
    if conf.get("networkId") != genesis.network_id:
        genesis.problem(name, "networkId is " + repr(conf.get("networkId")) + ", expected " + str(genesis.network_id))
    if conf.get("partitionId") != partition_id:
        genesis.problem(name, "partitionId is " + repr(conf.get("partitionId")) + ", expected " + str(partition_id))
    validators = conf.get("validators")
    if not isinstance(validators, list) or not validators:
        genesis.problem(name, "validators is not a non-empty list")
        return
    ids = [check_node(genesis, name, node, "validators[" + str(index) + "]") for index, node in enumerate(validators)]
    if aggregator_id is not None and aggregator_id not in ids:
        genesis.problem(name, "validators does not list the aggregator node " + aggregator_id)


def check(genesis, partition_id, complete):
    """Check every genesis file present; with COMPLETE also require all of them. Return the root node id."""
    root_id = check_identity(genesis, "root")
    signed = check_signed_copy(genesis, root_id) if genesis.exists("trust-base.json") else False
    if genesis.exists("root/trust-base-signed.json") and not genesis.exists("trust-base.json"):
        genesis.problem("trust-base.json", "missing while root/trust-base-signed.json exists")
    check_trust_base(genesis, root_id, must_be_signed=signed)
    aggregator_id = check_identity(genesis, "aggregator")
    check_shard_conf(genesis, partition_id, aggregator_id)
    if complete:
        required = ["root/keys.json", "root/node-info.json", "trust-base.json", "root/trust-base-signed.json",
                    "aggregator/keys.json", "aggregator/node-info.json", genesis.shard_conf]
        for name in required:
            if not genesis.exists(name):
                genesis.problem(name, "missing after the bft-genesis step")
    return root_id


def take_ownership(root, uid, gid):
    """Give ROOT and everything below it to UID:GID, without following symbolic links."""
    os.lchown(root, uid, gid)
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            os.lchown(os.path.join(directory, name), uid, gid)


def write_public_file(path, text):
    """Write TEXT to PATH atomically, readable by every user (the proxy serves the trust base)."""
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(partial, 0o644)
    os.replace(partial, path)


def main(argv):
    parser = argparse.ArgumentParser(prog="genesis-tool")
    parser.add_argument("command", choices=["prepare", "verify"])
    parser.add_argument("--genesis", required=True)
    parser.add_argument("--network-id", type=int, required=True)
    parser.add_argument("--partition-id", type=int, required=True)
    parser.add_argument("--volume", required=True, help="volume name, for the error message")
    parser.add_argument("--owner", help="UID:GID that receives the directory (prepare)")
    parser.add_argument("--root-host", help="host name of the root node (verify)")
    parser.add_argument("--root-port", type=int, help="libp2p port of the root node (verify)")
    options = parser.parse_args(argv)

    shard_conf = "shard-conf-" + str(options.partition_id) + "_0.json"
    genesis = Genesis(options.genesis, options.network_id, shard_conf)
    if options.command == "prepare" and options.owner:
        uid, _, gid = options.owner.partition(":")
        take_ownership(options.genesis, int(uid), int(gid))
    root_id = check(genesis, options.partition_id, complete=options.command == "verify")

    if genesis.problems:
        print("genesis-tool: the genesis in volume " + options.volume + " is unusable:", file=sys.stderr)
        for problem in genesis.problems:
            print("  " + problem, file=sys.stderr)
        print("Remove the volume to start a new genesis (docker volume rm " + options.volume
              + "); every wallet then needs the new trust base.", file=sys.stderr)
        return 1

    if options.command == "verify":
        address = "/dns4/" + options.root_host + "/tcp/" + str(options.root_port) + "/p2p/" + root_id
        write_public_file(genesis.path("bootstrap-addresses"), address + "\n")
        for name in ("trust-base.json", shard_conf):
            os.chmod(genesis.path(name), 0o644)
        print("genesis-tool: genesis complete; bootstrap address " + address)
    else:
        print("genesis-tool: existing genesis files are valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''

# mongosh script of the MongoDB healthcheck. rs.status() throws NotYetInitialized
# until rs.initiate() has run once. The configuration is then stored in the data
# volume, so a restart with existing data only waits for the node to be PRIMARY.
_REPLICA_SET_CHECK = """\
try {{
  rs.status();
}} catch (error) {{
  if (error.codeName !== "NotYetInitialized") throw error;
  rs.initiate({{_id: "{replica_set}", members: [{{_id: 0, host: "{host}:{port}"}}]}});
}}
if (!db.hello().isWritablePrimary) quit(1);
"""


def aggregator_endpoint(settings: RunSettings, *, stack: str, include_proxy: bool = True) -> str:
    """Return the URL wallets use, e.g. ``https://aggregator.example.org`` or ``http://127.0.0.1:3000``."""
    if include_proxy and settings.tls_enabled:
        if settings.publish and not settings.uses_haproxy:
            return f"https://{settings.domain}:{settings.publish.port}"
        suffix = "" if settings.https_port == 443 else f":{settings.https_port}"
        return f"https://{settings.domain}{suffix}"
    if settings.publish:
        return f"http://{settings.publish.host}:{settings.publish.port}"
    if include_proxy:
        return f"http://{default_container_name(stack, 'aggregator-proxy')}"
    return f"http://{default_container_name(stack, 'aggregator')}:{AGGREGATOR_PORT}"


def aggregator_plan(
    settings: RunSettings,
    *,
    stack: str,
    network_id: int = DEFAULT_NETWORK_ID,
    images: Mapping[str, str] | None = None,
    include_proxy: bool = True,
) -> StackPlan:
    """Turn validated run settings into the aggregator stack's containers, networks and volumes.

    IMAGES overrides entries of AGGREGATOR_IMAGES by key. Without INCLUDE_PROXY
    the TLS proxy is left out and the aggregator's own port is published on
    ``settings.publish``. Raises SettingsError for an unknown image key or a
    network id outside 1-65535.
    """
    unknown = sorted(set(images or {}) - set(AGGREGATOR_IMAGES))
    if unknown:
        raise SettingsError("images", unknown[0], f"expected one of: {', '.join(AGGREGATOR_IMAGES)}")
    if isinstance(network_id, bool) or not isinstance(network_id, int) or not 1 <= network_id <= 65535:
        raise SettingsError("--network-id", network_id, "expected an integer from 1 to 65535 (3 for a local genesis)")

    stack_images = {**AGGREGATOR_IMAGES, **(images or {})}
    names = _Names(stack)
    private_network = direct_network_name(stack)
    labels = common_labels(stack=stack, service=SERVICE)

    containers = [
        _genesis_prepare(names, stack_images, network_id),
        _bft_genesis(names, stack_images, network_id),
        _genesis_verify(names, stack_images, network_id),
        _bft_root(names, stack_images),
        _bft_config_upload(names, stack_images),
        _mongodb(names, stack_images),
        _aggregator(names, stack_images, publish=None if include_proxy else settings),
    ]
    networks = [NetworkSpec(private_network, labels=labels)]
    volumes = [
        VolumeSpec(names.genesis_volume, labels={**labels, LABEL_ROLE: "genesis"}),
        VolumeSpec(names.mongo_volume, labels={**labels, LABEL_ROLE: "data"}),
    ]
    if include_proxy:
        containers.append(_aggregator_proxy(settings, names, stack_images))
        volumes.append(VolumeSpec(names.certificate_volume, labels={**labels, LABEL_ROLE: "certificates"}))
        if settings.uses_haproxy:
            networks.insert(0, NetworkSpec(settings.haproxy_net, external=True))

    endpoint = aggregator_endpoint(settings, stack=stack, include_proxy=include_proxy)
    containers = [_finish(spec, stack=stack, private_network=private_network, endpoint=endpoint) for spec in containers]
    logger.debug("aggregator plan stack=%s containers=%d", stack, len(containers))
    return StackPlan(containers=containers, networks=networks, volumes=volumes)


class _Names:
    """Container and volume names of one stack."""

    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.genesis_volume = f"{self.container('aggregator')}-genesis"
        self.mongo_volume = f"{self.container('aggregator')}-mongodb"
        self.certificate_volume = f"{self.container('aggregator-proxy')}-letsencrypt"

    def container(self, component: str) -> str:
        return default_container_name(self.stack, component)


def _finish(spec: ContainerSpec, *, stack: str, private_network: str, endpoint: str) -> ContainerSpec:
    """Add the labels, the private network and the host name every container of the stack gets."""
    component = spec.labels[LABEL_COMPONENT]
    labels = {**common_labels(stack=stack, service=SERVICE), **spec.labels}
    if component == "aggregator-proxy" or (component == "aggregator" and spec.ports):
        labels[LABEL_ENDPOINT] = endpoint
    networks = spec.networks if private_network in spec.networks else (*spec.networks, private_network)
    return replace(spec, labels=labels, networks=networks, hostname=spec.name)


def _one_shot(names: _Names, component: str, image: str, **fields: object) -> ContainerSpec:
    return ContainerSpec(
        name=names.container(component),
        service=SERVICE,
        image=image,
        labels={LABEL_COMPONENT: component},
        restart_policy="no",
        **fields,  # type: ignore[arg-type]
    )


def _genesis_tool_args(command: str, names: _Names, network_id: int) -> tuple[str, ...]:
    return (
        command,
        "--genesis", GENESIS_DIR,
        "--network-id", str(network_id),
        "--partition-id", str(PARTITION_ID),
        "--volume", names.genesis_volume,
    )


def _genesis_prepare(names: _Names, images: Mapping[str, str], network_id: int) -> ContainerSpec:
    return _one_shot(
        names,
        "genesis-prepare",
        images["genesis-tools"],
        entrypoint=("python3", "-c", GENESIS_TOOL_SCRIPT),
        command=(*_genesis_tool_args("prepare", names, network_id), "--owner", f"{BFT_UID}:{BFT_UID}"),
        # chown needs root; every later step runs as uid 1001.
        user="0:0",
        volumes=(VolumeMount(names.genesis_volume, GENESIS_DIR),),
    )


def _bft_genesis_script(network_id: int) -> str:
    """Return the busybox sh script that runs each ubft genesis step whose output is missing."""
    home = GENESIS_DIR
    steps = [
        ("root/node-info.json", "creating the root node identity",
         ["ubft", "root-node", "init", "--home", f"{home}/root", "-g"]),
        ("trust-base.json", "generating the trust base",
         ["ubft", "trust-base", "generate", "--home", home, "--network-id", str(network_id),
          "--node-info", f"{home}/root/node-info.json"]),
        ("root/trust-base-signed.json", "signing the trust base with the root key",
         ["sign_trust_base"]),
        ("aggregator/node-info.json", "creating the aggregator node identity",
         ["ubft", "shard-node", "init", "--home", f"{home}/aggregator", "--generate"]),
        (SHARD_CONF_FILE, "generating the shard configuration of partition 7",
         ["ubft", "shard-conf", "generate", "--home", home, "--t2-timeout", "5000",
          "--network-id", str(network_id), "--partition-id", str(PARTITION_ID),
          "--partition-type-id", str(PARTITION_ID), "--epoch-start", "10",
          f"--node-info={home}/aggregator/node-info.json"]),
    ]
    lines = [
        "set -eu",
        f"cd {home}",
        "step() {",
        '  output=$1; what=$2; shift 2',
        '  if [ -f "$output" ]; then echo "bft-genesis: keeping $output"; return 0; fi',
        '  echo "bft-genesis: $what"',
        '  "$@"',
        "}",
        # ubft signs the trust base in place; the copy marks the signing as done.
        "sign_trust_base() {",
        f"  ubft trust-base sign --home {home}/root --trust-base {home}/trust-base.json",
        "  cp trust-base.json root/trust-base-signed.json.partial",
        "  mv root/trust-base-signed.json.partial root/trust-base-signed.json",
        "}",
    ]
    lines += [shlex.join(["step", output, what, *command]) for output, what, command in steps]
    return "\n".join(lines) + "\n"


def _bft_genesis(names: _Names, images: Mapping[str, str], network_id: int) -> ContainerSpec:
    return _one_shot(
        names,
        "bft-genesis",
        images["bft-core"],
        entrypoint=("/busybox/sh", "-c", _bft_genesis_script(network_id)),
        user=f"{BFT_UID}:{BFT_UID}",
        volumes=(VolumeMount(names.genesis_volume, GENESIS_DIR),),
        depends_on={names.container("genesis-prepare"): Condition.COMPLETED},
    )


def _genesis_verify(names: _Names, images: Mapping[str, str], network_id: int) -> ContainerSpec:
    return _one_shot(
        names,
        "genesis-verify",
        images["genesis-tools"],
        entrypoint=("python3", "-c", GENESIS_TOOL_SCRIPT),
        command=(
            *_genesis_tool_args("verify", names, network_id),
            "--root-host", names.container("bft-root"),
            "--root-port", str(BFT_P2P_PORT),
        ),
        user=f"{BFT_UID}:{BFT_UID}",
        volumes=(VolumeMount(names.genesis_volume, GENESIS_DIR),),
        depends_on={names.container("bft-genesis"): Condition.COMPLETED},
    )


def _bft_root(names: _Names, images: Mapping[str, str]) -> ContainerSpec:
    name = names.container("bft-root")
    # hostname -i is the container's address on its one network; the root
    # binds both listeners there, as in aggregator-go's docker-compose.yml.
    script = (
        "set -eu\n"
        "address=$(hostname -i)\n"
        f"exec ubft root-node run --home {GENESIS_DIR}/root"
        f' --address "/ip4/$address/tcp/{BFT_P2P_PORT}"'
        f" --trust-base {GENESIS_DIR}/trust-base.json"
        f' --rpc-server-address "$address:{BFT_RPC_PORT}"\n'
    )
    return ContainerSpec(
        name=name,
        service=SERVICE,
        image=images["bft-core"],
        entrypoint=("/busybox/sh", "-c", script),
        user=f"{BFT_UID}:{BFT_UID}",
        volumes=(VolumeMount(names.genesis_volume, GENESIS_DIR),),
        health=HealthCheck(
            test=("/busybox/sh", "-c", f"nc -z {name} {BFT_P2P_PORT} && nc -z {name} {BFT_RPC_PORT}"),
            interval_s=2.0,
            timeout_s=5.0,
            retries=15,
            start_period_s=30.0,
        ),
        depends_on={names.container("genesis-verify"): Condition.COMPLETED},
        labels={LABEL_COMPONENT: "bft-root"},
    )


def _bft_config_upload(names: _Names, images: Mapping[str, str]) -> ContainerSpec:
    url = f"http://{names.container('bft-root')}:{BFT_RPC_PORT}/api/v1/configurations"
    # The marker contains a digest of the shard configuration and the trust base,
    # so a re-applied stack does not upload the same configuration again,
    # while a new genesis (a new trust base) is uploaded.
    # NOTE: whether the root accepts a second PUT of the same configuration is
    # untested, hence the marker.
    script = (
        "set -eu\n"
        f"cd {GENESIS_DIR}\n"
        f'digest=$(cat {SHARD_CONF_FILE} trust-base.json | sha256sum | cut -d " " -f 1)\n'
        f'if [ -f {UPLOAD_MARKER_FILE} ] && [ "$(cat {UPLOAD_MARKER_FILE})" = "$digest" ]; then\n'
        f'  echo "bft-config-upload: {SHARD_CONF_FILE} was uploaded already"; exit 0\n'
        "fi\n"
        f'echo "bft-config-upload: PUT {SHARD_CONF_FILE} to {url}"\n'
        "curl --silent --show-error --fail-with-body --max-time 30 --retry 3 --retry-delay 1"
        f" -X PUT -H 'Content-Type: application/json' --data-binary @{SHARD_CONF_FILE} {url}\n"
        "echo\n"
        f'printf "%s\\n" "$digest" > {UPLOAD_MARKER_FILE}.partial\n'
        f"mv {UPLOAD_MARKER_FILE}.partial {UPLOAD_MARKER_FILE}\n"
    )
    return _one_shot(
        names,
        "bft-config-upload",
        images["curl"],
        entrypoint=("/bin/sh", "-c", script),
        user=f"{BFT_UID}:{BFT_UID}",
        volumes=(VolumeMount(names.genesis_volume, GENESIS_DIR),),
        depends_on={
            names.container("bft-root"): Condition.HEALTHY,
            names.container("genesis-verify"): Condition.COMPLETED,
        },
    )


def _mongodb(names: _Names, images: Mapping[str, str]) -> ContainerSpec:
    name = names.container("mongodb")
    check = _REPLICA_SET_CHECK.format(replica_set=REPLICA_SET, host=name, port=MONGO_PORT)
    # The image's entrypoint starts as root, gives /data/db to its mongodb
    # user and drops to it, so the data volume needs no volume-init step.
    return ContainerSpec(
        name=name,
        service=SERVICE,
        image=images["mongo"],
        command=("mongod", "--replSet", REPLICA_SET, "--bind_ip_all"),
        volumes=(VolumeMount(names.mongo_volume, MONGO_DATA_DIR),),
        health=HealthCheck(
            test=("mongosh", "--quiet", "--eval", check),
            interval_s=2.0,
            timeout_s=10.0,
            retries=15,
            start_period_s=60.0,
        ),
        labels={LABEL_COMPONENT: "mongodb"},
        stop_timeout_s=30,
    )


def _aggregator_entrypoint_script() -> str:
    """Return the sh script that exports BFT_BOOTSTRAP_ADDRESSES from genesis-verify's file."""
    path = f"{AGGREGATOR_CONFIG_DIR}/{BOOTSTRAP_ADDRESSES_FILE}"
    return (
        "set -eu\n"
        f'if [ ! -s {path} ]; then\n'
        f'  echo "aggregator: {path} is missing or empty; the genesis-verify step writes it" >&2\n'
        "  exit 1\n"
        "fi\n"
        f'BFT_BOOTSTRAP_ADDRESSES=$(cat {path})\n'
        "export BFT_BOOTSTRAP_ADDRESSES\n"
        "exec /app/aggregator\n"
    )


def _aggregator(names: _Names, images: Mapping[str, str], *, publish: RunSettings | None) -> ContainerSpec:
    mongo = names.container("mongodb")
    config = AGGREGATOR_CONFIG_DIR
    env = {
        "PORT": str(AGGREGATOR_PORT),
        "HOST": "0.0.0.0",
        "MONGODB_URI": f"mongodb://{mongo}:{MONGO_PORT}/aggregator?replicaSet={REPLICA_SET}&directConnection=true",
        "MONGODB_DATABASE": "aggregator",
        # One aggregator and no leader election: it is the standalone leader.
        "DISABLE_HIGH_AVAILABILITY": "true",
        "SHARDING_MODE": "standalone",
        "BFT_ENABLED": "true",
        "BFT_SHARD_CONF_FILE": f"{config}/{SHARD_CONF_FILE}",
        "BFT_TRUST_BASE_FILES": f"{config}/trust-base.json",
        "SIGNING_KEY_FILE": f"{config}/aggregator/keys.json",
        "BFT_RPC_ADDRESS": f"http://{names.container('bft-root')}:{BFT_RPC_PORT}",
    }
    ports: tuple[PortBinding, ...] = ()
    if publish is not None and publish.publish:
        ports = (PortBinding(AGGREGATOR_PORT, publish.publish.port, publish.publish.host),)
    return ContainerSpec(
        name=names.container("aggregator"),
        service=SERVICE,
        image=images["aggregator-go"],
        entrypoint=("/bin/sh", "-c", _aggregator_entrypoint_script()),
        env=env,
        ports=ports,
        volumes=(VolumeMount(names.genesis_volume, config, read_only=True),),
        # GET, because aggregator-go registers /health for GET only and
        # busybox wget --spider may send HEAD.
        health=HealthCheck(
            test=("wget", "-q", "-T", "5", "-O", "/dev/null", f"http://127.0.0.1:{AGGREGATOR_PORT}/health"),
            # Docker 20.10 runs the first check one interval after the start, so the interval is the
            # soonest the proxy and the faucet can follow.
            interval_s=2.0,
            timeout_s=6.0,
            retries=10,
            start_period_s=60.0,
        ),
        depends_on={
            mongo: Condition.HEALTHY,
            names.container("bft-root"): Condition.HEALTHY,
            names.container("genesis-verify"): Condition.COMPLETED,
            names.container("bft-config-upload"): Condition.COMPLETED,
        },
        labels={LABEL_COMPONENT: "aggregator"},
    )


def _aggregator_proxy(settings: RunSettings, names: _Names, images: Mapping[str, str]) -> ContainerSpec:
    env = wrapper_env(settings)
    env["AGGREGATOR_UPSTREAM"] = f"http://{names.container('aggregator')}:{AGGREGATOR_PORT}"
    ports: tuple[PortBinding, ...] = ()
    if settings.publish:
        ports = (PortBinding(settings.front_port, settings.publish.port, settings.publish.host),)
    # With an edge, the edge network comes first: the container is created on
    # it, and the private network is connected before start.
    networks = (settings.haproxy_net,) if settings.uses_haproxy else ()
    return ContainerSpec(
        name=names.container("aggregator-proxy"),
        service=SERVICE,
        image=images["aggregator-proxy"],
        env=env,
        secret_files=secret_files(settings),
        ports=ports,
        volumes=(
            VolumeMount(names.genesis_volume, PROXY_CONFIG_DIR, read_only=True),
            VolumeMount(names.certificate_volume, CERTIFICATE_DIR),
        ),
        networks=networks,
        depends_on={names.container("aggregator"): Condition.HEALTHY},
        labels={LABEL_COMPONENT: "aggregator-proxy"},
    )
