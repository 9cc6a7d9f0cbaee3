"""Finding a Docker engine (tests/containers/engine.py): why there is none is said."""

from __future__ import annotations

from pathlib import Path

import pytest

from .engine import answers, docker_engine


def test_a_dead_docker_host_is_named_not_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An explicit DOCKER_HOST that does not answer is reported, never silently swapped."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with docker_engine() as engine:
        assert not engine.available
        assert engine.skip_reason == f"DOCKER_HOST=unix://{tmp_path}/nothing.sock does not answer"
        assert engine.private_pid is None


def test_no_engine_and_no_dockerd_is_a_clear_skip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # neither docker nor dockerd
    assert not answers({"PATH": str(tmp_path)})
    with docker_engine() as engine:
        assert engine.skip_reason == "no Docker engine answers and dockerd is not installed"
