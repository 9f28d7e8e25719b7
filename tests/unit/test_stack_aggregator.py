"""The aggregator stack's specs against the upstream contracts, and the genesis tool script."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from unicity_infra.errors import SettingsError
from unicity_infra.settings import PublishAddress, RunSettings, wrapper_image
from unicity_infra.stack.aggregator import (
    AGGREGATOR_IMAGES,
    GENESIS_TOOL_SCRIPT,
    LABEL_COMPONENT,
    aggregator_endpoint,
    aggregator_plan,
)
from unicity_infra.stack.plan import StackPlan
from unicity_infra.stack.spec import (
    LABEL_ENDPOINT,
    LABEL_MANAGED,
    LABEL_ROLE,
    LABEL_SERVICE,
    LABEL_STACK,
    Condition,
    ContainerSpec,
    PortBinding,
    VolumeMount,
)

STACK = "t1"
ONE_SHOTS = ("genesis-prepare", "bft-genesis", "genesis-verify", "bft-config-upload")


def _settings(**overrides: object) -> RunSettings:
    options: dict[str, object] = {
        "service": "aggregator",
        "image": wrapper_image("aggregator-proxy"),
        "container_name": "unicity-aggregator-proxy",
        "domain": "aggregator.example.org",
    }
    options.update(overrides)
    return RunSettings(**options)  # type: ignore[arg-type]


def _plan(**overrides: object) -> StackPlan:
    return aggregator_plan(_settings(**overrides), stack=STACK)


def _container(plan: StackPlan, component: str) -> ContainerSpec:
    return next(spec for spec in plan.containers if spec.labels[LABEL_COMPONENT] == component)


def _name(component: str) -> str:
    return f"unicity-{STACK}-{component}"


# --- containers, images and order -------------------------------------------------


def test_aggregator_plan_start_order() -> None:
    components = [spec.labels[LABEL_COMPONENT] for spec in _plan().containers]

    assert components == [
        "genesis-prepare", "bft-genesis", "genesis-verify", "bft-root",
        "bft-config-upload", "mongodb", "aggregator", "aggregator-proxy",
    ]


def test_aggregator_plan_container_names_carry_stack() -> None:
    names = [spec.name for spec in _plan().containers]

    assert names[3] == "unicity-t1-bft-root"
    assert all(name.startswith("unicity-t1-") for name in names)


def test_aggregator_plan_default_stack_names() -> None:
    plan = aggregator_plan(_settings(), stack="default")

    assert _container(plan, "bft-root").name == "unicity-bft-root"


def test_aggregator_images_pins() -> None:
    assert AGGREGATOR_IMAGES["bft-core"] == (
        "ghcr.io/unicitynetwork/bft-core:ceceacd11b7a735de74ce17884a3a45e0db1748d"
    )
    assert AGGREGATOR_IMAGES["mongo"] == "mongo:7.0"
    assert AGGREGATOR_IMAGES["curl"] == "curlimages/curl:8.13.0"
    assert AGGREGATOR_IMAGES["aggregator-proxy"] == wrapper_image("aggregator-proxy")


def test_aggregator_images_aggregator_speaks_v2() -> None:
    repository, _, tag = AGGREGATOR_IMAGES["aggregator-go"].rpartition(":")
    version = tuple(int(part) for part in tag.split("."))

    assert repository == "ghcr.io/unicitynetwork/aggregator-go"
    assert version >= (0, 2, 0)


def test_aggregator_plan_every_image_is_pinned() -> None:
    for spec in _plan().containers:
        assert ":" in spec.image.rsplit("/", 1)[-1], spec.name
        assert not spec.image.endswith(":latest") or spec.image == AGGREGATOR_IMAGES["genesis-tools"], spec.name


@pytest.mark.parametrize(
    ("component", "image_key"),
    [
        ("genesis-prepare", "genesis-tools"),
        ("bft-genesis", "bft-core"),
        ("genesis-verify", "genesis-tools"),
        ("bft-root", "bft-core"),
        ("bft-config-upload", "curl"),
        ("mongodb", "mongo"),
        ("aggregator", "aggregator-go"),
        ("aggregator-proxy", "aggregator-proxy"),
    ],
)
def test_aggregator_plan_images_by_key(component: str, image_key: str) -> None:
    overrides = {key: f"example.test/{key}:1" for key in AGGREGATOR_IMAGES}
    plan = aggregator_plan(_settings(), stack=STACK, images=overrides)

    assert _container(plan, component).image == f"example.test/{image_key}:1"


def test_aggregator_plan_override_keeps_other_pins() -> None:
    plan = aggregator_plan(_settings(), stack=STACK, images={"mongo": "mongo:7.0.14"})

    assert _container(plan, "mongodb").image == "mongo:7.0.14"
    assert _container(plan, "bft-root").image == AGGREGATOR_IMAGES["bft-core"]


def test_aggregator_plan_unknown_image_key() -> None:
    with pytest.raises(SettingsError, match="redis"):
        aggregator_plan(_settings(), stack=STACK, images={"redis": "redis:7-alpine"})


@pytest.mark.parametrize("network_id", [0, -3, 65536, True, "3"])
def test_aggregator_plan_invalid_network_id(network_id: object) -> None:
    with pytest.raises(SettingsError, match="--network-id"):
        aggregator_plan(_settings(), stack=STACK, network_id=network_id)  # type: ignore[arg-type]


# --- aggregator environment ---------------------------------------------------------


def test_aggregator_env_signing_key_file() -> None:
    env = _container(_plan(), "aggregator").env

    assert env["SIGNING_KEY_FILE"] == "/app/bft-config/aggregator/keys.json"
    assert "BFT_KEY_CONF_FILE" not in env


def test_aggregator_env_trust_base_files_plural() -> None:
    env = _container(_plan(), "aggregator").env

    assert env["BFT_TRUST_BASE_FILES"] == "/app/bft-config/trust-base.json"
    assert "BFT_TRUST_BASE_FILE" not in env


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "3000"),
        ("MONGODB_URI", "mongodb://unicity-t1-mongodb:27017/aggregator?replicaSet=rs0&directConnection=true"),
        ("DISABLE_HIGH_AVAILABILITY", "true"),
        ("SHARDING_MODE", "standalone"),
        ("BFT_ENABLED", "true"),
        ("BFT_SHARD_CONF_FILE", "/app/bft-config/shard-conf-7_0.json"),
        ("BFT_RPC_ADDRESS", "http://unicity-t1-bft-root:8002"),
    ],
)
def test_aggregator_env_value(variable: str, value: str) -> None:
    assert _container(_plan(), "aggregator").env[variable] == value


def test_aggregator_bootstrap_addresses_come_from_genesis_file() -> None:
    aggregator = _container(_plan(), "aggregator")
    script = aggregator.entrypoint[-1] if aggregator.entrypoint else ""

    assert "BFT_BOOTSTRAP_ADDRESSES" not in aggregator.env
    assert aggregator.entrypoint[:2] == ("/bin/sh", "-c")
    assert "BFT_BOOTSTRAP_ADDRESSES=$(cat /app/bft-config/bootstrap-addresses)" in script
    assert "export BFT_BOOTSTRAP_ADDRESSES" in script
    assert script.rstrip().endswith("exec /app/aggregator")


def test_aggregator_healthcheck_gets_health() -> None:
    health = _container(_plan(), "aggregator").health

    assert health is not None
    assert health.test[0] == "wget"
    assert "--spider" not in health.test
    assert health.test[-1] == "http://127.0.0.1:3000/health"


def test_aggregator_plan_no_haproxy_port_variable() -> None:
    for spec in _plan().containers:
        assert "HAPROXY_PORT" not in spec.env, spec.name


def test_aggregator_proxy_env() -> None:
    env = _container(_plan(), "aggregator-proxy").env

    assert env["AGGREGATOR_UPSTREAM"] == "http://unicity-t1-aggregator:3000"
    assert env["HAPROXY_API_PORT"] == "8404"
    assert env["SSL_DOMAIN"] == "aggregator.example.org"


def test_aggregator_proxy_api_key_travels_as_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-key")
    proxy = _container(_plan(haproxy_api_key_file=key_file), "aggregator-proxy")

    assert proxy.env["HAPROXY_API_KEY_FILE"] == "/run/secrets/haproxy_api_key"
    assert [secret.source for secret in proxy.secret_files] == [key_file]
    assert all("s3cret-key" not in value for value in proxy.env.values())


# --- genesis steps -------------------------------------------------------------------


def test_genesis_prepare_runs_as_root_and_takes_ownership() -> None:
    prepare = _container(_plan(), "genesis-prepare")

    assert prepare.user == "0:0"
    assert prepare.entrypoint[:2] == ("python3", "-c")
    assert prepare.command is not None
    assert prepare.command[0] == "prepare"
    assert prepare.command[prepare.command.index("--owner") + 1] == "1001:1001"


def test_genesis_verify_names_root_address() -> None:
    verify = _container(_plan(), "genesis-verify")
    command = verify.command or ()

    assert verify.user == "1001:1001"
    assert command[0] == "verify"
    assert command[command.index("--root-host") + 1] == "unicity-t1-bft-root"
    assert command[command.index("--root-port") + 1] == "8000"


@pytest.mark.parametrize(
    "step",
    [
        "ubft root-node init --home /genesis/root -g",
        "ubft trust-base generate --home /genesis --network-id 3 --node-info /genesis/root/node-info.json",
        "ubft trust-base sign --home /genesis/root --trust-base /genesis/trust-base.json",
        "ubft shard-node init --home /genesis/aggregator --generate",
        (
            "ubft shard-conf generate --home /genesis --t2-timeout 5000 --network-id 3 --partition-id 7 "
            "--partition-type-id 7 --epoch-start 10 --node-info=/genesis/aggregator/node-info.json"
        ),
    ],
)
def test_bft_genesis_runs_step(step: str) -> None:
    genesis = _container(_plan(), "bft-genesis")
    script = genesis.entrypoint[-1] if genesis.entrypoint else ""

    assert genesis.entrypoint[:2] == ("/busybox/sh", "-c")
    assert step in script


@pytest.mark.parametrize(
    "output",
    ["root/node-info.json", "trust-base.json", "root/trust-base-signed.json",
     "aggregator/node-info.json", "shard-conf-7_0.json"],
)
def test_bft_genesis_step_skips_when_output_exists(output: str) -> None:
    script = _container(_plan(), "bft-genesis").entrypoint[-1]  # type: ignore[index]

    assert re.search(rf"^step {re.escape(output)} ", script, re.MULTILINE)


def test_bft_genesis_network_id_passed_through() -> None:
    plan = aggregator_plan(_settings(), stack=STACK, network_id=4)
    script = _container(plan, "bft-genesis").entrypoint[-1]  # type: ignore[index]
    verify = _container(plan, "genesis-verify").command or ()

    assert script.count("--network-id 4") == 2
    assert "--network-id 3" not in script
    assert verify[verify.index("--network-id") + 1] == "4"


def test_bft_config_upload_fails_on_http_error() -> None:
    upload = _container(_plan(), "bft-config-upload")
    script = upload.entrypoint[-1] if upload.entrypoint else ""

    assert upload.entrypoint[:2] == ("/bin/sh", "-c")
    assert script.startswith("set -eu\n")
    assert "--fail-with-body" in script
    assert "|| true" not in script
    assert "-X PUT" in script
    assert "http://unicity-t1-bft-root:8002/api/v1/configurations" in script
    assert "--data-binary @shard-conf-7_0.json" in script


def test_bft_root_runs_from_genesis() -> None:
    root = _container(_plan(), "bft-root")
    script = root.entrypoint[-1] if root.entrypoint else ""

    assert root.user == "1001:1001"
    assert "exec ubft root-node run --home /genesis/root" in script
    assert '--address "/ip4/$address/tcp/8000"' in script
    assert '--rpc-server-address "$address:8002"' in script
    assert root.health is not None


def test_mongodb_flags() -> None:
    assert _container(_plan(), "mongodb").command == ("mongod", "--replSet", "rs0", "--bind_ip_all")


def test_mongodb_healthcheck_initiates_and_awaits_primary() -> None:
    health = _container(_plan(), "mongodb").health
    assert health is not None
    script = health.test[-1]

    assert health.test[:3] == ("mongosh", "--quiet", "--eval")
    assert 'error.codeName !== "NotYetInitialized"' in script
    assert 'rs.initiate({_id: "rs0", members: [{_id: 0, host: "unicity-t1-mongodb:27017"}]});' in script
    assert "if (!db.hello().isWritablePrimary) quit(1);" in script


# --- readiness and restart ------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "dependency", "condition"),
    [
        ("bft-genesis", "genesis-prepare", Condition.COMPLETED),
        ("genesis-verify", "bft-genesis", Condition.COMPLETED),
        ("bft-root", "genesis-verify", Condition.COMPLETED),
        ("bft-config-upload", "bft-root", Condition.HEALTHY),
        ("bft-config-upload", "genesis-verify", Condition.COMPLETED),
        ("aggregator", "mongodb", Condition.HEALTHY),
        ("aggregator", "bft-root", Condition.HEALTHY),
        ("aggregator", "bft-config-upload", Condition.COMPLETED),
        ("aggregator", "genesis-verify", Condition.COMPLETED),
        ("aggregator-proxy", "aggregator", Condition.HEALTHY),
    ],
)
def test_aggregator_plan_dependency(component: str, dependency: str, condition: Condition) -> None:
    assert _container(_plan(), component).depends_on[_name(dependency)] is condition


def test_aggregator_plan_dependencies_precede_dependants() -> None:
    started: set[str] = set()
    for spec in _plan().containers:
        assert set(spec.depends_on) <= started, spec.name
        started.add(spec.name)


@pytest.mark.parametrize("component", ONE_SHOTS)
def test_aggregator_plan_one_shot_awaited_completed(component: str) -> None:
    plan = _plan()
    awaited = {name: condition for spec in plan.containers for name, condition in spec.depends_on.items()}

    assert awaited[_name(component)] is Condition.COMPLETED


@pytest.mark.parametrize("component", ONE_SHOTS)
def test_aggregator_plan_one_shot_not_restarted(component: str) -> None:
    assert _container(_plan(), component).restart_policy == "no"


@pytest.mark.parametrize("component", ["bft-root", "mongodb", "aggregator", "aggregator-proxy"])
def test_aggregator_plan_services_restart(component: str) -> None:
    assert _container(_plan(), component).restart_policy == "unless-stopped"


@pytest.mark.parametrize("component", ["bft-root", "mongodb", "aggregator"])
def test_aggregator_plan_awaited_services_have_healthchecks(component: str) -> None:
    assert _container(_plan(), component).health is not None


# --- volumes ----------------------------------------------------------------------------


def test_aggregator_plan_volume_roles() -> None:
    roles = {volume.name: volume.labels[LABEL_ROLE] for volume in _plan().volumes}

    assert roles == {
        "unicity-t1-aggregator-genesis": "genesis",
        "unicity-t1-aggregator-mongodb": "data",
        "unicity-t1-aggregator-proxy-letsencrypt": "certificates",
    }


def test_aggregator_plan_volumes_labelled() -> None:
    for volume in _plan().volumes:
        assert volume.labels[LABEL_MANAGED] == "true"
        assert volume.labels[LABEL_STACK] == STACK
        assert volume.labels[LABEL_SERVICE] == "aggregator"


@pytest.mark.parametrize(
    ("component", "mount"),
    [
        ("genesis-prepare", VolumeMount("unicity-t1-aggregator-genesis", "/genesis")),
        ("bft-genesis", VolumeMount("unicity-t1-aggregator-genesis", "/genesis")),
        ("bft-root", VolumeMount("unicity-t1-aggregator-genesis", "/genesis")),
        ("bft-config-upload", VolumeMount("unicity-t1-aggregator-genesis", "/genesis")),
        ("mongodb", VolumeMount("unicity-t1-aggregator-mongodb", "/data/db")),
        ("aggregator", VolumeMount("unicity-t1-aggregator-genesis", "/app/bft-config", read_only=True)),
        ("aggregator-proxy", VolumeMount("unicity-t1-aggregator-genesis", "/etc/aggregator-config", read_only=True)),
        ("aggregator-proxy", VolumeMount("unicity-t1-aggregator-proxy-letsencrypt", "/etc/letsencrypt")),
    ],
)
def test_aggregator_plan_mount(component: str, mount: VolumeMount) -> None:
    assert mount in _container(_plan(), component).volumes


def test_aggregator_plan_mounted_volumes_are_declared() -> None:
    plan = _plan()
    declared = {volume.name for volume in plan.volumes}

    for spec in plan.containers:
        assert {mount.volume for mount in spec.volumes} <= declared, spec.name


# --- networks and labels ---------------------------------------------------------------


def test_aggregator_plan_only_proxy_on_edge_network() -> None:
    plan = _plan()

    for spec in plan.containers:
        if spec.labels[LABEL_COMPONENT] == "aggregator-proxy":
            assert spec.networks == ("haproxy-net", "unicity-infra-t1")
        else:
            assert spec.networks == ("unicity-infra-t1",), spec.name


def test_aggregator_plan_edge_network_external() -> None:
    networks = {network.name: network.external for network in _plan().networks}

    assert networks == {"haproxy-net": True, "unicity-infra-t1": False}


def test_aggregator_plan_direct_mode_has_no_edge_network() -> None:
    plan = _plan(haproxy_host=None, publish=PublishAddress("127.0.0.1", 3443))
    proxy = _container(plan, "aggregator-proxy")

    assert [network.name for network in plan.networks] == ["unicity-infra-t1"]
    assert proxy.networks == ("unicity-infra-t1",)
    assert proxy.ports == (PortBinding(443, 3443, "127.0.0.1"),)
    assert _container(plan, "aggregator").ports == ()


def test_aggregator_plan_labels_every_container() -> None:
    for spec in _plan().containers:
        assert spec.labels[LABEL_MANAGED] == "true"
        assert spec.labels[LABEL_STACK] == STACK
        assert spec.labels[LABEL_SERVICE] == "aggregator"
        assert spec.hostname == spec.name


def test_aggregator_plan_endpoint_label_on_proxy() -> None:
    plan = _plan()

    assert _container(plan, "aggregator-proxy").labels[LABEL_ENDPOINT] == "https://aggregator.example.org"
    assert LABEL_ENDPOINT not in _container(plan, "aggregator").labels


def test_aggregator_plan_without_proxy() -> None:
    settings = _settings(domain=None, haproxy_host=None, publish=PublishAddress("127.0.0.1", 3001))
    plan = aggregator_plan(settings, stack=STACK, include_proxy=False)
    aggregator = _container(plan, "aggregator")

    assert "aggregator-proxy" not in [spec.labels[LABEL_COMPONENT] for spec in plan.containers]
    assert [volume.labels[LABEL_ROLE] for volume in plan.volumes] == ["genesis", "data"]
    assert aggregator.ports == (PortBinding(3000, 3001, "127.0.0.1"),)
    assert aggregator.labels[LABEL_ENDPOINT] == "http://127.0.0.1:3001"


@pytest.mark.parametrize(
    ("overrides", "include_proxy", "endpoint"),
    [
        ({}, True, "https://aggregator.example.org"),
        ({"https_port": 8443}, True, "https://aggregator.example.org:8443"),
        ({"haproxy_host": None, "publish": PublishAddress("127.0.0.1", 3443)}, True,
         "https://aggregator.example.org:3443"),
        ({"domain": None, "haproxy_host": None, "publish": PublishAddress("127.0.0.1", 3001)}, False,
         "http://127.0.0.1:3001"),
        ({"domain": None, "haproxy_host": None}, False, "http://unicity-t1-aggregator:3000"),
    ],
)
def test_aggregator_endpoint(overrides: dict[str, object], include_proxy: bool, endpoint: str) -> None:
    assert aggregator_endpoint(_settings(**overrides), stack=STACK, include_proxy=include_proxy) == endpoint


# --- the genesis tool script, run in-process -------------------------------------------


def _genesis_tool() -> Callable[[list[str]], int]:
    # The script is shipped as source to python3 -c, so the test runs that same source.
    namespace: dict[str, object] = {"__name__": "genesis_tool"}
    exec(compile(GENESIS_TOOL_SCRIPT, "genesis-tool", "exec"), namespace)  # noqa: S102
    return namespace["main"]  # type: ignore[return-value]


def _node() -> dict[str, object]:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    return {
        "nodeId": "16Uiu2HAm" + "".join(secrets.choice(alphabet) for _ in range(44)),
        "sigKey": "0x02" + secrets.token_hex(32),
        "stake": 1,
    }


def _write(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def _write_identity(home: Path) -> dict[str, object]:
    node = _node()
    key = {"algorithm": "secp256k1", "privateKey": "0x" + secrets.token_hex(32)}
    _write(home / "keys.json", {"sigKey": key, "authKey": key})
    _write(home / "node-info.json", node)
    return node


def _write_genesis(directory: Path, *, network_id: int = 3) -> dict[str, object]:
    """Write a complete genesis the way bft-genesis leaves it; return the root node."""
    root = _write_identity(directory / "root")
    aggregator = _write_identity(directory / "aggregator")
    trust_base = {
        "version": 1, "networkId": network_id, "epoch": 1, "epochStartRound": 1, "rootNodes": [root],
        "quorumThreshold": 1, "stateHash": "", "changeRecordHash": "", "previousEntryHash": "",
        "signatures": {root["nodeId"]: "0x" + secrets.token_hex(65)},
    }
    _write(directory / "trust-base.json", trust_base)
    _write(directory / "root" / "trust-base-signed.json", trust_base)
    _write(directory / "shard-conf-7_0.json",
           {"version": 1, "networkId": network_id, "partitionId": 7, "validators": [aggregator]})
    return root


def _run_tool(command: str, directory: Path, *extra: str) -> int:
    argv = [command, "--genesis", str(directory), "--network-id", "3", "--partition-id", "7",
            "--volume", "genesis-volume", *extra]
    return _genesis_tool()(argv)


def test_genesis_tool_prepare_accepts_empty_volume(tmp_path: Path) -> None:
    owner = f"{os.getuid()}:{os.getgid()}"

    assert _run_tool("prepare", tmp_path, "--owner", owner) == 0


def test_genesis_tool_prepare_accepts_complete_genesis(tmp_path: Path) -> None:
    _write_genesis(tmp_path)

    assert _run_tool("prepare", tmp_path) == 0


def test_genesis_tool_verify_writes_bootstrap_address(tmp_path: Path) -> None:
    root = _write_genesis(tmp_path)

    status = _run_tool("verify", tmp_path, "--root-host", "bft-root", "--root-port", "8000")

    assert status == 0
    assert (tmp_path / "bootstrap-addresses").read_text() == f"/dns4/bft-root/tcp/8000/p2p/{root['nodeId']}\n"
    assert (tmp_path / "trust-base.json").stat().st_mode & 0o777 == 0o644


def _corrupt_trust_base(directory: Path) -> None:
    (directory / "trust-base.json").write_text('{"version": 1,')


def _wrong_network(directory: Path) -> None:
    document = json.loads((directory / "trust-base.json").read_text())
    document["networkId"] = 4
    _write(directory / "trust-base.json", document)
    _write(directory / "root" / "trust-base-signed.json", document)


def _unsigned_copy_differs(directory: Path) -> None:
    document = json.loads((directory / "trust-base.json").read_text())
    document["signatures"] = {}
    _write(directory / "trust-base.json", document)


def _half_identity(directory: Path) -> None:
    (directory / "aggregator" / "node-info.json").unlink()


def _foreign_validator(directory: Path) -> None:
    _write(directory / "shard-conf-7_0.json",
           {"version": 1, "networkId": 3, "partitionId": 7, "validators": [_node()]})


def _trust_base_without_root(directory: Path) -> None:
    for name in ("keys.json", "node-info.json"):
        (directory / "root" / name).unlink()


@pytest.mark.parametrize(
    ("damage", "named_file"),
    [
        (_corrupt_trust_base, "trust-base.json: is not valid JSON"),
        (_wrong_network, "networkId is 4, expected 3"),
        (_unsigned_copy_differs, "root/trust-base-signed.json: differs from trust-base.json"),
        (_half_identity, "aggregator/node-info.json: missing while"),
        (_foreign_validator, "validators does not list the aggregator node"),
        (_trust_base_without_root, "trust-base.json: present, but the root identity"),
    ],
)
def test_genesis_tool_prepare_rejects_damaged_genesis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], None], named_file: str
) -> None:
    _write_genesis(tmp_path)
    damage(tmp_path)

    status = _run_tool("prepare", tmp_path)
    stderr = capsys.readouterr().err

    assert status == 1
    assert named_file in stderr
    assert "docker volume rm genesis-volume" in stderr


def test_genesis_tool_prepare_accepts_partial_genesis(tmp_path: Path) -> None:
    _write_identity(tmp_path / "root")

    assert _run_tool("prepare", tmp_path) == 0


def test_genesis_tool_verify_requires_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_genesis(tmp_path)
    (tmp_path / "shard-conf-7_0.json").unlink()

    status = _run_tool("verify", tmp_path, "--root-host", "bft-root", "--root-port", "8000")

    assert status == 1
    assert "shard-conf-7_0.json: missing after the bft-genesis step" in capsys.readouterr().err
    assert not (tmp_path / "bootstrap-addresses").exists()


def test_genesis_tool_verify_requires_root_signature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_genesis(tmp_path)
    document = json.loads((tmp_path / "trust-base.json").read_text())
    document["signatures"] = {}
    _write(tmp_path / "trust-base.json", document)
    _write(tmp_path / "root" / "trust-base-signed.json", document)

    status = _run_tool("verify", tmp_path, "--root-host", "bft-root", "--root-port", "8000")

    assert status == 1
    assert "carries no 65-byte signature of the root node" in capsys.readouterr().err
