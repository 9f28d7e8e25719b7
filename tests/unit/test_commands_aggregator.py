"""The aggregator's run helpers that need no Docker (commands/aggregator.py)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from unicity_infra import cli as cli_module
from unicity_infra.commands.aggregator import GenesisTrustBase, check_aggregator_ready, stack_images
from unicity_infra.probes.report import Check, Report, Status
from unicity_infra.settings import AggregatorSettings, RunSettings, wrapper_image
from unicity_infra.stack.aggregator import AGGREGATOR_IMAGES


def _settings(**overrides: str) -> RunSettings:
    return RunSettings(
        service="aggregator",
        image=wrapper_image("aggregator-proxy"),
        container_name="unicity-aggregator-proxy",
        aggregator=AggregatorSettings(image_overrides=overrides),
    )


def test_stack_images_pins_without_overrides() -> None:
    assert stack_images(_settings()) == AGGREGATOR_IMAGES


def test_stack_images_override_replaces_one_key() -> None:
    images = stack_images(_settings(mongo="example.test/mongo:7"))

    assert images["mongo"] == "example.test/mongo:7"
    assert images["bft-core"] == AGGREGATOR_IMAGES["bft-core"]


def test_stack_images_proxy_from_image_option() -> None:
    settings = RunSettings(service="aggregator", image="example.test/proxy:1", container_name="unicity-aggregator-proxy")

    assert stack_images(settings)["aggregator-proxy"] == "example.test/proxy:1"


def test_genesis_trust_base_summary() -> None:
    data = json.dumps({"networkId": 3, "epoch": 1, "rootNodes": [{"nodeId": "a"}]}).encode()
    trust_base = GenesisTrustBase(data=data, container="c", path="/genesis/trust-base.json",
                                  modified_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))

    summary = trust_base.summary()

    assert summary["networkId"] == 3
    assert summary["epoch"] == 1
    assert summary["rootNodes"] == 1
    assert summary["sha256"] == trust_base.sha256
    assert summary["createdAt"] == "2026-01-02T03:04:05Z"
    assert summary["source"] == "c:/genesis/trust-base.json"


def test_genesis_trust_base_summary_unparsable() -> None:
    summary = GenesisTrustBase(data=b"{", container="c", path="p", modified_at=None).summary()

    assert summary["networkId"] is None
    assert summary["createdAt"] is None


def test_check_aggregator_ready_passes_green_report() -> None:
    report = Report("http://127.0.0.1:3000", (Check("health", Status.OK, "ok"), Check("block height", Status.OK, "ok")))

    # An engine is needed only for the log lines of a failure.
    check_aggregator_ready(None, report, stack="t1")  # type: ignore[arg-type]


def test_trust_base_export_json_needs_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["trust-base", "export", "--json"])

    assert exit_info.value.code == 2
    assert "add --out FILE" in capsys.readouterr().err
