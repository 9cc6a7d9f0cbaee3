"""kcat, the independent Kafka client our tests check the topic with (not our code, not
confluent-kafka-python: what it reads is what any consumer would read)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from scripts.stack.librdkafka import kcat_env


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    headers: dict[str, str]

    def json(self) -> object:
        assert self.value is not None
        return json.loads(self.value)


def _kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        raise RuntimeError("kcat is not installed (apt-get install kcat); .ci/run installs it")
    return path


def _client_args(client: Mapping[str, str]) -> list[str]:
    """librdkafka settings (KafkaServer.client_config) as kcat's -b and -X arguments."""
    args = ["-b", client["bootstrap.servers"]]
    for key, value in client.items():
        if key != "bootstrap.servers":
            args += ["-X", f"{key}={value}"]
    return args


def read_all(client: Mapping[str, str], topic: str, *, timeout: float = 30) -> list[KafkaRecord]:
    """Every record of `topic` from the beginning up to its current end, read with the
    settings (and so as the principal) of `client`."""
    result = subprocess.run(
        [
            _kcat(),
            "-C",
            *_client_args(client),
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-J",
            "-D",
            "\n",
            "-X",
            "api.version.request=true",
        ],
        capture_output=True,
        timeout=timeout,
        check=True,
        env={**os.environ, **kcat_env()},  # a librdkafka whose SCRAM Kafka 4 accepts
    )
    # kcat writes payloads raw inside its JSON: binary ones are read leniently (their
    # bytes are then approximate; headers, keys and offsets are exact).
    lines = result.stdout.decode("utf-8", "replace").split("\n")
    return [_record(json.loads(line, strict=False)) for line in lines if line.strip()]


def produce(
    client: Mapping[str, str],
    topic: str,
    value: bytes,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Send one record as an outside system would (any client, any language), acting as
    the principal of `client`; a refused write raises CalledProcessError."""
    args = [
        _kcat(),
        "-P",
        *_client_args(client),
        "-t",
        topic,
        "-c",
        "1",
        "-X",
        "partitioner=murmur2_random",
    ]
    if key is not None:
        args += ["-k", key]
    for name, header in (headers or {}).items():
        args += ["-H", f"{name}={header}"]
    subprocess.run(
        args,
        input=value,
        check=True,
        timeout=30,
        capture_output=True,
        env={**os.environ, **kcat_env()},  # a librdkafka whose SCRAM Kafka 4 accepts
    )


def _record(raw: dict[str, object]) -> KafkaRecord:
    header_list = raw.get("headers") or []
    assert isinstance(header_list, list)
    headers = {str(header_list[i]): str(header_list[i + 1]) for i in range(0, len(header_list), 2)}
    payload = raw.get("payload")
    value = None if payload is None else str(payload).encode()
    if raw.get("payload_b64"):  # binary-safe form, when kcat offers it
        value = base64.b64decode(str(raw["payload_b64"]))
    key = raw.get("key")
    return KafkaRecord(
        topic=str(raw["topic"]),
        partition=int(str(raw["partition"])),
        offset=int(str(raw["offset"])),
        key=None if key is None else str(key),
        value=value,
        headers=headers,
    )
