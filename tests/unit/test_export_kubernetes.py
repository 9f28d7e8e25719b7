"""export kubernetes: manifests valid against the Kubernetes schemas, derived from the specs 'up' applies."""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import unicity_infra.engine.recipes
from unicity_infra.commands.up import UpSettings
from unicity_infra.errors import SettingsError
from unicity_infra.export.kubernetes import (
    WRAPPER_HEALTHCHECK,
    kubernetes_files,
    kubernetes_objects,
    render_kubernetes,
)
from unicity_infra.export.stack import ExportedStack, plan_export
from unicity_infra.settings import build_run_settings
from unicity_infra.stack.faucet import faucet_plan
from unicity_infra.stack.spec import HealthCheck

KUBERNETES_VERSION = "1.30.0"
DOCKERFILES = Path(unicity_infra.engine.recipes.__file__).parent / "images"


def exported(mode: str = "direct", *services: str, stack: str = "k1") -> ExportedStack:
    settings = UpSettings(mode=mode, services=services, domain_suffix="example.org")
    return plan_export(settings, stack=stack, edge_registration=False)


def objects_of(stack: ExportedStack) -> list[dict[str, Any]]:
    """Parse the rendered stream, as kubectl reads it."""
    return [item for item in yaml.safe_load_all(render_kubernetes(stack, command="test")) if item]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(item for item in objects if item["kind"] == kind and item["metadata"]["name"] == name)


def workload(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(item for item in objects if item["kind"] in ("Deployment", "StatefulSet")
                and item["metadata"]["name"] == name)


def main_container(item: dict[str, Any]) -> dict[str, Any]:
    return item["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("mode", ["direct", "production"])
def test_kubernetes_manifests_pass_strict_schema_validation(mode: str) -> None:
    for item in objects_of(exported(mode)):
        kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validation_rejects_a_broken_manifest() -> None:
    broken = copy.deepcopy(workload(objects_of(exported("direct", "relay")), "unicity-k1-relay"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["periodSecond"] = 5

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_validate_cli_good_and_broken(tmp_path: Path) -> None:
    good = tmp_path / "stack.yaml"
    good.write_text(render_kubernetes(exported("production"), command="test"))
    broken = tmp_path / "broken.yaml"
    broken.write_text(good.read_text().replace("replicas: 1", "replicas: one", 1))

    def validate(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(path)],
                              capture_output=True, text=True, check=False)

    assert validate(good).returncode == 0, validate(good).stdout
    assert validate(broken).returncode != 0


@pytest.mark.parametrize(("name", "kind"), [
    ("unicity-k1-relay", "StatefulSet"),
    ("unicity-k1-bft-root", "StatefulSet"),
    ("unicity-k1-mongodb", "StatefulSet"),
    ("unicity-k1-faucet", "StatefulSet"),
    ("unicity-k1-aggregator", "Deployment"),
    ("unicity-k1-aggregator-proxy", "Deployment"),
])
def test_kubernetes_workload_kind(name: str, kind: str) -> None:
    assert workload(objects_of(exported()), name)["kind"] == kind


def test_kubernetes_one_shots_as_init_containers() -> None:
    objects = objects_of(exported("direct", "aggregator"))

    def init_names(name: str) -> list[str]:
        return [item["name"] for item in workload(objects, name)["spec"]["template"]["spec"].get("initContainers", [])]

    assert init_names("unicity-k1-bft-root") == ["genesis-prepare", "bft-genesis", "genesis-verify"]
    assert init_names("unicity-k1-aggregator") == ["bft-config-upload"]
    assert init_names("unicity-k1-mongodb") == []


def test_kubernetes_no_workload_for_one_shot_steps() -> None:
    names = {item["metadata"]["name"] for item in objects_of(exported("direct", "aggregator"))}

    assert "unicity-k1-genesis-verify" not in names


def test_kubernetes_services_keep_container_host_names() -> None:
    objects = objects_of(exported("direct", "aggregator"))
    mongodb = find(objects, "Service", "unicity-k1-mongodb")
    aggregator = workload(objects, "unicity-k1-aggregator")

    assert [port["port"] for port in mongodb["spec"]["ports"]] == [27017]
    env = {item["name"]: item["value"] for item in main_container(aggregator)["env"]}
    assert "//unicity-k1-mongodb:27017/" in env["MONGODB_URI"]


def test_kubernetes_self_checking_services_publish_not_ready_addresses() -> None:
    objects = objects_of(exported("direct", "aggregator"))

    assert find(objects, "Service", "unicity-k1-bft-root")["spec"]["publishNotReadyAddresses"] is True
    assert "publishNotReadyAddresses" not in find(objects, "Service", "unicity-k1-aggregator")["spec"]


def test_kubernetes_probes_run_the_spec_healthcheck() -> None:
    stack = exported("direct", "aggregator")
    spec = next(spec for spec in stack.plans["aggregator"].containers if spec.name == "unicity-k1-mongodb")
    assert spec.health is not None

    container = main_container(workload(objects_of(stack), "unicity-k1-mongodb"))

    assert container["readinessProbe"]["exec"]["command"] == list(spec.health.test)
    assert container["livenessProbe"]["failureThreshold"] == spec.health.retries
    assert container["readinessProbe"]["periodSeconds"] == 2
    # Docker's 60 s start period at 2 s intervals, plus the retries.
    assert container["startupProbe"]["failureThreshold"] == 30 + spec.health.retries


def test_kubernetes_wrapper_probes_run_the_image_healthcheck() -> None:
    container = main_container(workload(objects_of(exported("direct", "relay")), "unicity-k1-relay"))

    assert container["livenessProbe"]["exec"]["command"] == ["python3", "-m", "unicity_infra.container.healthcheck"]
    assert container["livenessProbe"]["periodSeconds"] == 2


@pytest.mark.parametrize("image", ["relay", "faucet", "aggregator-proxy"])
def test_wrapper_healthcheck_matches_the_dockerfile(image: str) -> None:
    text = (DOCKERFILES / f"{image}.Dockerfile").read_text()
    match = re.search(r"^HEALTHCHECK (?P<options>[^\\\n]*)\\?\s*CMD (?P<command>\[.*\])$", text, re.MULTILINE)
    assert match, f"no HEALTHCHECK in {image}.Dockerfile"
    options = dict(option.removeprefix("--").split("=") for option in shlex.split(match["options"]))

    assert yaml.safe_load(match["command"]) == list(WRAPPER_HEALTHCHECK.test)
    assert options == {"interval": f"{WRAPPER_HEALTHCHECK.interval_s:.0f}s",
                       "timeout": f"{WRAPPER_HEALTHCHECK.timeout_s:.0f}s",
                       "start-period": f"{WRAPPER_HEALTHCHECK.start_period_s:.0f}s",
                       "retries": str(WRAPPER_HEALTHCHECK.retries)}


def test_kubernetes_escapes_dollar_in_command() -> None:
    container = main_container(workload(objects_of(exported("direct", "aggregator")), "unicity-k1-bft-root"))

    assert "address=$$(hostname -i)" in container["command"][2]


def test_kubernetes_leaves_dollar_in_probe_commands() -> None:
    # Kubernetes expands $(VAR) in command, args and env, never in an exec probe.
    stack = exported("direct", "relay")
    plan = stack.plans["relay"]
    plan.containers[0] = replace(plan.containers[0], env={**plan.containers[0].env, "HINT": "a$b"},
                                 health=HealthCheck(test=("sh", "-c", 'test -n "$HOME"')))

    container = main_container(workload(objects_of(stack), "unicity-k1-relay"))

    assert container["readinessProbe"]["exec"]["command"] == ["sh", "-c", 'test -n "$HOME"']
    assert {"name": "HINT", "value": "a$$b"} in container["env"]


def test_kubernetes_secret_is_a_reference_never_a_value(tmp_path: Path) -> None:
    mnemonic = tmp_path / "mnemonic"
    mnemonic.write_text("abandon abandon abandon never-exported\n")
    settings = build_run_settings("faucet", container_name="unicity-k1-faucet", no_haproxy=True,
                                  secret_files=(f"faucet_mnemonic={mnemonic}",))
    stack = ExportedStack(stack="k1", mode="direct", plans={"faucet": faucet_plan(settings, stack="k1")})

    text = render_kubernetes(stack, command="test")
    pod = workload(objects_of(stack), "unicity-k1-faucet")["spec"]["template"]["spec"]

    assert "never-exported" not in text
    assert str(mnemonic) not in text
    assert "Secret" not in {item["kind"] for item in objects_of(stack)}
    sources = next(volume for volume in pod["volumes"] if volume["name"] == "secrets")["projected"]["sources"]
    assert sources == [{"secret": {"name": "unicity-k1-faucet-mnemonic",
                                   "items": [{"key": "faucet_mnemonic", "path": "faucet_mnemonic"}]}}]
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in pod["containers"][0]["volumeMounts"]


def test_kubernetes_production_passes_tls_through_per_domain() -> None:
    objects = objects_of(exported("production"))
    public = find(objects, "Service", "unicity-k1-relay-public")

    assert public["spec"]["type"] == "LoadBalancer"
    assert [(port["port"], port["targetPort"]) for port in public["spec"]["ports"]] == [(80, "http"), (443, "https")]
    assert public["metadata"]["annotations"]["org.unicity.infra/domains"] == "relay.example.org"


def test_kubernetes_tls_service_routes_before_ready() -> None:
    objects = objects_of(exported("production", "relay"))

    assert find(objects, "Service", "unicity-k1-relay-public")["spec"]["publishNotReadyAddresses"] is True
    assert find(objects, "Service", "unicity-k1-relay")["spec"]["publishNotReadyAddresses"] is True


def test_kubernetes_production_registers_with_no_edge() -> None:
    for item in objects_of(exported("production")):
        if item["kind"] in ("Deployment", "StatefulSet"):
            names = {variable["name"] for variable in main_container(item).get("env", [])}
            assert "HAPROXY_HOST" not in names, item["metadata"]["name"]


def test_kubernetes_direct_has_no_public_services() -> None:
    assert not [item for item in objects_of(exported("direct")) if item["metadata"]["name"].endswith("-public")]


def test_kubernetes_shared_claim_affinity() -> None:
    pod = workload(objects_of(exported("direct", "aggregator")), "unicity-k1-aggregator")["spec"]["template"]["spec"]

    terms = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == [{"labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "k1",
                                                        "app.kubernetes.io/name": "bft-root"}},
                      "topologyKey": "kubernetes.io/hostname"}]


def test_kubernetes_claims_carry_the_volume_names() -> None:
    claims = {item["metadata"]["name"] for item in objects_of(exported("direct", "relay"))
              if item["kind"] == "PersistentVolumeClaim"}

    assert claims == {"unicity-k1-relay-data", "unicity-k1-relay-letsencrypt"}


def test_kubernetes_files_one_per_service() -> None:
    files = kubernetes_files(exported(), command="test")

    assert list(files) == ["relay.yaml", "aggregator.yaml", "faucet.yaml"]


def test_kubernetes_objects_invalid_stack_name() -> None:
    with pytest.raises(SettingsError, match="Big_Stack"):
        kubernetes_objects(exported("direct", "relay", stack="Big_Stack"))
