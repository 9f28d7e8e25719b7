"""Unit tests of the faucet plan: log-line parsing, discovery document, tenant variables, secret files."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timezone
from pathlib import Path

import coincurve
import pytest

from unicity_infra.container.config import load_config
from unicity_infra.container.errors import ConfigError, ToolMissingError
from unicity_infra.container.services import load_plan
from unicity_infra.container.services.faucet import (
    DISCOVERY_HEADERS,
    DISCOVERY_PATH,
    FaucetSettings,
    build_discovery_document,
    build_plan,
    discovery_status,
    prepare_faucet_environment,
    read_faucet_settings,
)
from unicity_infra.container.services.faucet_log import (
    FaucetIdentity,
    IdentityTracker,
    apply_log_line,
    is_compressed_pubkey,
    parse_log_line,
)
from unicity_infra.container.services.faucet_tenant import (
    TENANT_VARIABLES,
    ensure_tenant,
    generate_tenant,
    load_tenant,
    parse_secret_names,
    read_secret_files,
    tenant_environment,
)
from unicity_infra.container.supervisor import FAILED, RESTARTING, RUNNING, STARTING, STOPPED, ProcessStatus

PUBKEY = "02" + "a1" * 32
OTHER_PUBKEY = "03" + "b2" * 32
STARTED = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def pino(msg: str, **fields: object) -> str:
    return json.dumps({"level": 30, "time": 1, "ts": "2026-12-01T12:00:00.000Z", "component": "faucet-acp", **fields, "msg": msg})


def derive_with_coincurve(private_key: str) -> str:
    return coincurve.PrivateKey(bytes.fromhex(private_key)).public_key.format(compressed=True).hex()


def refuse_to_derive(private_key: str) -> str:
    raise AssertionError("the key deriver must not be called when a tenant file exists")


def service(state: str, *, restarts: int = 0, last_exit_code: int | None = None) -> ProcessStatus:
    return ProcessStatus(
        name="faucet", state=state, pid=77 if state in (STARTING, RUNNING) else None,
        restarts=restarts, last_exit_code=last_exit_code, started_at=STARTED,
    )


# --- log lines ------------------------------------------------------------------------------


def test_apply_log_line_announced_pubkey() -> None:
    identity = apply_log_line(FaucetIdentity(), pino("faucet_chain_pubkey_announced", chain_pubkey=PUBKEY))

    assert identity.chain_pubkey == PUBKEY
    assert identity.direct_address == f"DIRECT://{PUBKEY}"


def test_apply_log_line_ignores_truncated_pubkey() -> None:
    line = pino("sphere_initialized", pubkey=PUBKEY[:16] + "...", direct_address=f"DIRECT://{PUBKEY}", nametag="f-1")

    identity = apply_log_line(FaucetIdentity(), line)

    assert identity == FaucetIdentity()


def test_apply_log_line_ignores_other_pubkey_fields() -> None:
    identity = apply_log_line(FaucetIdentity(), pino("hello_sent", pubkey=PUBKEY, chain_pubkey=OTHER_PUBKEY))

    assert identity.chain_pubkey is None


def test_apply_log_line_nametag_only_after_verification() -> None:
    identity = FaucetIdentity()
    for line in (
        pino("registering_nametag", nametag="faucet-one"),
        pino("sphere_initialized", nametag="faucet-one", pubkey="02ab..."),
        pino("nametag_verification_failed", nametag="faucet-one", attempt=1),
    ):
        identity = apply_log_line(identity, line)
    assert identity.nametag is None

    identity = apply_log_line(identity, pino("nametag_verified", nametag="faucet-one", attempt=2))

    assert identity.nametag == "faucet-one"


def test_apply_log_line_lower_cases_announced_pubkey() -> None:
    identity = apply_log_line(FaucetIdentity(), pino("faucet_chain_pubkey_announced", chain_pubkey=PUBKEY.upper()))

    assert identity.chain_pubkey == PUBKEY


@pytest.mark.parametrize(
    "bad_pubkey",
    [PUBKEY[:16] + "...", "04" + "a1" * 32, PUBKEY + "00", PUBKEY[:-2], "02" + "zz" * 32, 12345, None],
)
def test_apply_log_line_rejects_invalid_announced_pubkey(bad_pubkey: object) -> None:
    identity = apply_log_line(FaucetIdentity(), pino("faucet_chain_pubkey_announced", chain_pubkey=bad_pubkey))

    assert identity.chain_pubkey is None


@pytest.mark.parametrize(
    "line",
    ["", "plain text", "[1,2]", '{"msg": 5}', '{"chain_pubkey": "' + PUBKEY + '"}', "{not json", "null"],
)
def test_parse_log_line_ignores_non_pino_lines(line: str) -> None:
    assert parse_log_line(line) is None


def test_is_compressed_pubkey_requires_66_lower_case_hex() -> None:
    assert is_compressed_pubkey(PUBKEY)
    assert is_compressed_pubkey(OTHER_PUBKEY)
    assert not is_compressed_pubkey(PUBKEY.upper())
    assert not is_compressed_pubkey(PUBKEY[2:])


def test_identity_tracker_new_process_starts_empty() -> None:
    tracker = IdentityTracker()
    first = tracker.watch_new_process()
    first(pino("faucet_chain_pubkey_announced", chain_pubkey=PUBKEY))
    assert tracker.readiness(1.0) is None

    second = tracker.watch_new_process()

    assert tracker.identity() == FaucetIdentity()
    assert tracker.readiness(1.0) is not None
    second(pino("faucet_chain_pubkey_announced", chain_pubkey=PUBKEY))
    assert tracker.readiness(1.0) is None


def test_identity_tracker_ignores_lines_of_finished_process() -> None:
    tracker = IdentityTracker()
    old_process = tracker.watch_new_process()
    tracker.watch_new_process()

    old_process(pino("faucet_chain_pubkey_announced", chain_pubkey=OTHER_PUBKEY))

    assert tracker.identity().chain_pubkey is None


# --- discovery document ------------------------------------------------------------------------


def settings_for_test(**overrides: str) -> FaucetSettings:
    environ = {
        "UNICITY_NOSTR_RELAYS": "ws://relay-a:80, ws://relay-b:80",
        "SPHERE_AGGREGATOR_URL": "http://aggregator:3000",
        "SPHERE_TRUSTBASE_URL": "http://aggregator:3000/.well-known/trust-base.json",
        "UNICITY_NETWORK": "testnet",
        **overrides,
    }
    return read_faucet_settings(environ)


ANNOUNCED = FaucetIdentity(chain_pubkey=PUBKEY, nametag="faucet-one")


@pytest.mark.parametrize(
    ("state", "restarts", "last_exit_code", "status", "restart_count", "shows_identity"),
    [
        (STOPPED, 0, None, "starting", 0, False),
        (STARTING, 0, None, "starting", 0, True),
        (RUNNING, 0, None, "running", 0, True),
        (RESTARTING, 0, 1, "restarting", 1, False),
        (RESTARTING, 2, 1, "restarting", 3, False),
        (STARTING, 3, 1, "starting", 3, True),
        (RUNNING, 3, 1, "running", 3, True),
        (FAILED, 0, None, "failed", 1, False),
        (STOPPED, 1, 0, "stopped", 1, False),
    ],
)
def test_build_discovery_document_every_status(
    state: str, restarts: int, last_exit_code: int | None, status: str, restart_count: int, shows_identity: bool
) -> None:
    document = build_discovery_document(
        service=service(state, restarts=restarts, last_exit_code=last_exit_code),
        identity=ANNOUNCED,
        settings=settings_for_test(),
        domain="faucet.example.org",
    )

    assert document["status"] == status
    assert document["restart_count"] == restart_count
    assert document["last_exit_code"] == last_exit_code
    assert document["chain_pubkey"] == (PUBKEY if shows_identity else None)
    assert document["direct_address"] == (f"DIRECT://{PUBKEY}" if shows_identity else None)
    assert document["nametag"] == ("faucet-one" if shows_identity else None)


def test_build_discovery_document_names_what_the_faucet_uses() -> None:
    document = build_discovery_document(
        service=service(RUNNING), identity=ANNOUNCED, settings=settings_for_test(), domain="faucet.example.org"
    )

    assert document["domain"] == "faucet.example.org"
    assert document["network"] == "testnet"
    assert document["nostr_relays"] == ["ws://relay-a:80", "ws://relay-b:80"]
    assert document["aggregator_url"] == "http://aggregator:3000"
    assert document["trust_base_url"] == "http://aggregator:3000/.well-known/trust-base.json"
    assert document["started_at"] == "2026-12-01T12:00:00Z"
    assert json.loads(json.dumps(document)) == document


def test_build_discovery_document_running_before_nametag_verified() -> None:
    document = build_discovery_document(
        service=service(RUNNING), identity=FaucetIdentity(chain_pubkey=PUBKEY), settings=settings_for_test(), domain=None
    )

    assert document["status"] == "running"
    assert document["nametag"] is None
    assert document["domain"] is None


def test_read_faucet_settings_sphere_relays_when_unicity_unset() -> None:
    settings = read_faucet_settings({"SPHERE_NOSTR_RELAYS": "wss://relay.example.org"})

    assert settings.nostr_relays == ("wss://relay.example.org",)
    assert settings.network == "testnet"
    assert settings.data_dir == Path("/data/wallet")


def test_discovery_status_never_running_unless_process_running() -> None:
    statuses = {discovery_status(service(state, restarts=1, last_exit_code=1))
                for state in (STOPPED, STARTING, RESTARTING, FAILED)}

    assert "running" not in statuses


def test_discovery_headers_allow_any_origin_without_caching() -> None:
    assert DISCOVERY_HEADERS == {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}


# --- tenant variables ----------------------------------------------------------------------------


def test_generate_tenant_manager_key_is_valid_point() -> None:
    tenant = generate_tenant(derive_public_key=derive_with_coincurve, instance_name="faucet one")

    public_key = tenant.variables["UNICITY_MANAGER_PUBKEY"]
    # coincurve raises for bytes that are not a point on secp256k1.
    assert coincurve.PublicKey(bytes.fromhex(public_key)).format(compressed=True).hex() == public_key
    assert derive_with_coincurve(tenant.manager_private_key) == public_key
    assert tenant.variables["UNICITY_MANAGER_DIRECT_ADDRESS"] == f"DIRECT://{public_key}"
    assert set(tenant.variables) == set(TENANT_VARIABLES)
    assert tenant.variables["UNICITY_INSTANCE_NAME"] == "faucet one"
    assert len(tenant.variables["UNICITY_BOOT_TOKEN"]) == 64


def test_generate_tenant_differs_each_time() -> None:
    first = generate_tenant(derive_public_key=derive_with_coincurve, instance_name="f")
    second = generate_tenant(derive_public_key=derive_with_coincurve, instance_name="f")

    assert first.manager_private_key != second.manager_private_key
    assert first.variables["UNICITY_INSTANCE_ID"] != second.variables["UNICITY_INSTANCE_ID"]


def test_generate_tenant_rejects_bad_derived_key() -> None:
    with pytest.raises(ConfigError, match="no compressed public key"):
        generate_tenant(derive_public_key=lambda private_key: "04" + "00" * 64, instance_name="f")


def test_tenant_repr_hides_private_key() -> None:
    tenant = generate_tenant(derive_public_key=derive_with_coincurve, instance_name="f")

    assert tenant.manager_private_key not in repr(tenant)


def test_ensure_tenant_persists_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "tenant.json"

    tenant = ensure_tenant(path, derive_public_key=derive_with_coincurve, instance_name="f")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_tenant(path) == tenant
    assert not list(path.parent.glob("*.partial"))


def test_ensure_tenant_reuses_file_without_regenerating(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    first = ensure_tenant(path, derive_public_key=derive_with_coincurve, instance_name="f")
    content = path.read_bytes()

    second = ensure_tenant(path, derive_public_key=refuse_to_derive, instance_name="another name")

    assert second == first
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    "content",
    ["", "not json", "{}", '{"variables": {}, "created_at": "x", "manager_private_key": "00"}', "[]"],
)
def test_load_tenant_invalid_file_names_path(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(content)

    with pytest.raises(ConfigError) as raised:
        load_tenant(path)

    assert str(path) in str(raised.value)
    assert "identity import" in str(raised.value)


def test_load_tenant_rejects_uncompressed_manager_key(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    tenant = generate_tenant(derive_public_key=derive_with_coincurve, instance_name="f")
    document = tenant.to_json()
    document["variables"]["UNICITY_MANAGER_PUBKEY"] = "not a key"  # type: ignore[index]
    path.write_text(json.dumps(document))

    with pytest.raises(ConfigError, match="not a compressed key"):
        load_tenant(path)


def test_tenant_environment_keeps_values_the_operator_set() -> None:
    tenant = generate_tenant(derive_public_key=derive_with_coincurve, instance_name="f")

    env = tenant_environment(tenant, {"UNICITY_INSTANCE_NAME": "operator name", "UNICITY_TEMPLATE_ID": " "})

    assert "UNICITY_INSTANCE_NAME" not in env
    assert env["UNICITY_TEMPLATE_ID"] == tenant.variables["UNICITY_TEMPLATE_ID"]
    assert env["UNICITY_MANAGER_PUBKEY"] == tenant.variables["UNICITY_MANAGER_PUBKEY"]


# --- secret files ------------------------------------------------------------------------------------

SECRET_VALUE = "s3cr3t-value-that-must-not-leak"


def test_read_secret_files_exports_content_without_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "SPHERE_API_KEY").write_text(SECRET_VALUE + "\n")
    (tmp_path / "FAUCET_MNEMONIC").write_text("word " * 11 + "word")

    values = read_secret_files(("SPHERE_API_KEY", "FAUCET_MNEMONIC"), tmp_path)

    assert values == {"SPHERE_API_KEY": SECRET_VALUE, "FAUCET_MNEMONIC": "word " * 11 + "word"}


def test_read_secret_files_missing_names_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        read_secret_files(("SPHERE_API_KEY",), tmp_path)

    message = str(raised.value)
    assert str(tmp_path / "SPHERE_API_KEY") in message
    assert "does not exist" in message
    assert "--secret-file SPHERE_API_KEY=PATH" in message


@pytest.mark.parametrize("content", [b"", b"\n", b"   \n"])
def test_read_secret_files_empty_names_path(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "SPHERE_API_KEY").write_bytes(content)

    with pytest.raises(ConfigError) as raised:
        read_secret_files(("SPHERE_API_KEY",), tmp_path)

    assert str(tmp_path / "SPHERE_API_KEY") in str(raised.value)
    assert "empty" in str(raised.value)


def test_read_secret_files_unreadable_names_path_not_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "SPHERE_API_KEY"
    secret.write_text(SECRET_VALUE)
    original = Path.read_bytes

    # Root reads any file whatever its mode, so the permission error is injected.
    def read_bytes_denied(self: Path) -> bytes:
        if self == secret:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes_denied)

    with pytest.raises(ConfigError) as raised:
        read_secret_files(("SPHERE_API_KEY",), tmp_path)

    message = str(raised.value)
    assert str(secret) in message
    assert "Permission denied" in message
    assert SECRET_VALUE not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"\xff\xfe secret", "not UTF-8"), (SECRET_VALUE.encode() + b"\0tail", "NUL byte")],
)
def test_read_secret_files_bad_content_never_shown(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "SPHERE_API_KEY").write_bytes(content)

    with pytest.raises(ConfigError) as raised:
        read_secret_files(("SPHERE_API_KEY",), tmp_path)

    assert reason in str(raised.value)
    assert str(tmp_path / "SPHERE_API_KEY") in str(raised.value)
    assert SECRET_VALUE not in str(raised.value)


def test_read_secret_files_directory_names_path(tmp_path: Path) -> None:
    (tmp_path / "SPHERE_API_KEY").mkdir()

    with pytest.raises(ConfigError, match="directory"):
        read_secret_files(("SPHERE_API_KEY",), tmp_path)


def test_parse_secret_names_drops_blanks_and_duplicates() -> None:
    assert parse_secret_names(" A_KEY, ,B_KEY,A_KEY ") == ("A_KEY", "B_KEY")
    assert parse_secret_names(None) == ()


@pytest.mark.parametrize("value", ["1KEY", "KEY-NAME", "../etc/passwd", "KEY NAME"])
def test_parse_secret_names_rejects_invalid_names(value: str) -> None:
    with pytest.raises(ConfigError, match="FAUCET_SECRET_FILES"):
        parse_secret_names(value)


# --- plan and start-up environment ----------------------------------------------------------------


def faucet_environ(tmp_path: Path, **overrides: str) -> dict[str, str]:
    app_dir = tmp_path / "app"
    (app_dir / "dist" / "acp-adapter").mkdir(parents=True, exist_ok=True)
    (app_dir / "dist" / "acp-adapter" / "main.js").write_text("// stand-in\n")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    return {
        "FAUCET_APP_DIR": str(app_dir),
        "FAUCET_TENANT_FILE": str(tmp_path / "data" / "tenant.json"),
        "FAUCET_SECRETS_DIR": str(tmp_path / "secrets"),
        "UNICITY_DATA_DIR": str(tmp_path / "data" / "wallet"),
        "UNICITY_TOKENS_DIR": str(tmp_path / "data" / "tokens"),
        **overrides,
    }


def test_prepare_faucet_environment_adds_tenant_and_secrets(tmp_path: Path) -> None:
    environ = faucet_environ(tmp_path, FAUCET_SECRET_FILES="SPHERE_API_KEY", UNICITY_INSTANCE_NAME="operator")
    (tmp_path / "secrets" / "SPHERE_API_KEY").write_text(SECRET_VALUE)

    env = prepare_faucet_environment(read_faucet_settings(environ), environ, derive_public_key=derive_with_coincurve)

    assert env["SPHERE_API_KEY"] == SECRET_VALUE
    assert is_compressed_pubkey(env["UNICITY_MANAGER_PUBKEY"])
    assert "UNICITY_INSTANCE_NAME" not in env
    assert (tmp_path / "data" / "tenant.json").is_file()


def test_prepare_faucet_environment_same_tenant_after_restart(tmp_path: Path) -> None:
    environ = faucet_environ(tmp_path)
    settings = read_faucet_settings(environ)
    first = prepare_faucet_environment(settings, environ, derive_public_key=derive_with_coincurve)

    second = prepare_faucet_environment(settings, environ, derive_public_key=refuse_to_derive)

    assert second == first


def test_prepare_faucet_environment_missing_app(tmp_path: Path) -> None:
    environ = faucet_environ(tmp_path, FAUCET_APP_DIR=str(tmp_path / "nowhere"))

    with pytest.raises(ToolMissingError, match="main.js"):
        prepare_faucet_environment(read_faucet_settings(environ), environ, derive_public_key=derive_with_coincurve)


def test_build_plan_runs_node_without_port(tmp_path: Path) -> None:
    environ = faucet_environ(tmp_path)

    plan = load_plan("faucet", load_config(environ), environ)

    assert plan.command == ("/usr/bin/node", str(tmp_path / "app" / "dist" / "acp-adapter" / "main.js"))
    assert plan.upstream_port is None
    assert (plan.uid, plan.gid) == (1001, 1001)
    assert plan.data_dirs == (tmp_path / "data" / "wallet", tmp_path / "data" / "tokens")
    assert [document.path for document in plan.public_documents] == [DISCOVERY_PATH]
    assert plan.public_documents[0].headers == DISCOVERY_HEADERS
    assert plan.stdout_watcher is not None
    assert plan.prepare_env is not None


def test_build_plan_reads_and_writes_no_file(tmp_path: Path) -> None:
    environ = faucet_environ(tmp_path, FAUCET_SECRET_FILES="MISSING_SECRET")

    build_plan(load_config(environ), environ, derive_public_key=refuse_to_derive)

    assert not (tmp_path / "data").exists()


def test_build_plan_nginx_serves_only_discovery(tmp_path: Path) -> None:
    environ = faucet_environ(tmp_path, UNICITY_STATUS_PORT="9181")

    plan = load_plan("faucet", load_config(environ), environ)

    assert plan.nginx_locations is not None
    assert f"location = {DISCOVERY_PATH} {{\n    proxy_pass http://127.0.0.1:9181;" in plan.nginx_locations
    assert "return 404" in plan.nginx_locations


def test_build_plan_discovery_reflects_tracker(tmp_path: Path) -> None:
    environ = faucet_environ(tmp_path, SSL_DOMAIN="faucet.example.org")
    plan = load_plan("faucet", load_config(environ), environ)
    assert plan.stdout_watcher is not None
    handle_line = plan.stdout_watcher()

    handle_line(pino("faucet_chain_pubkey_announced", chain_pubkey=PUBKEY))
    document = plan.public_documents[0].render(service(RUNNING))

    assert plan.readiness_probe(1.0) is None
    assert document["chain_pubkey"] == PUBKEY
    assert document["domain"] == "faucet.example.org"
