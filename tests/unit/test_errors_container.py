"""ContainerFailedError's message: the container, the reason and its last log lines or their absence."""

from __future__ import annotations

from unicity_infra.errors import ContainerFailedError


def test_message_shows_log_tail() -> None:
    error = ContainerFailedError("unicity-relay", "did not become healthy within 2 s", log_tail=["a", "b"])

    assert "its last 2 log lines follow" in str(error)
    assert "  | b" in str(error)


def test_message_says_no_log_lines() -> None:
    error = ContainerFailedError("unicity-relay", "did not become healthy within 0 s")

    assert str(error).endswith("it has written no log lines yet (see 'docker logs unicity-relay')")
