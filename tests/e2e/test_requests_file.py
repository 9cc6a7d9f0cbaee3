"""test-requests.http runs, top to bottom, against the real API, and every request gets
the status its title promises: the file a developer clicks through stays true."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from scripts.stack.paths import REPO
from tests.support.pipeline import Pipeline

FILE = REPO / "test-requests.http"
VARIABLE = re.compile(r"^@(\w+)\s*=\s*(.+)$")
REFERENCE = re.compile(r"\{\{(\w+)\.response\.body\.\$\.([\w.]+)\}\}")
EXPECTED = re.compile(r"-> (\d{3})$")


@dataclass
class Block:
    title: str
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: str
    name: str | None = None

    @property
    def expected(self) -> int:
        found = EXPECTED.search(self.title)
        assert found, f"title without '-> <status>': {self.title}"
        return int(found[1])


@dataclass
class Run:
    variables: dict[str, str]
    bodies: dict[str, Any] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        def reference(match: re.Match[str]) -> str:
            value: Any = self.bodies[match[1]]
            for step in match[2].split("."):
                value = value[step]
            return str(value)

        text = REFERENCE.sub(reference, text)
        for name, value in self.variables.items():
            text = text.replace(f"{{{{{name}}}}}", value)
        assert "{{" not in text, text
        return text


def parse(text: str) -> tuple[dict[str, str], list[Block]]:
    head, *chunks = re.split(r"^###[ \t]*", text, flags=re.MULTILINE)
    variables = {m[1]: m[2].strip() for line in head.splitlines() if (m := VARIABLE.match(line))}
    return variables, [_block(chunk) for chunk in chunks]


def _block(chunk: str) -> Block:
    title, *lines = chunk.splitlines()
    name = None
    while lines and (not lines[0].strip() or lines[0].startswith("#")):
        if found := re.match(r"#\s*@name\s+(\w+)", lines[0]):
            name = found[1]
        lines.pop(0)
    method, url = lines.pop(0).split(" ", 1)
    headers = []
    while lines and lines[0].strip():
        header, value = lines.pop(0).split(":", 1)
        headers.append((header.strip(), value.strip()))
    body = "\n".join(lines).strip()
    return Block(title.strip(), method, url.strip(), headers, body, name)


def _template(url: str) -> str:
    """`{{host}}/api/v1/orders/{{created.response…}}/cancel` -> `/api/v1/orders/{}/cancel`."""
    path = url.removeprefix("{{host}}").split("?", 1)[0]
    return re.sub(r"\{\{[^}]+\}\}|[0-9a-f]{8}-[0-9a-f-]{27}", "{}", path)


@pytest.fixture(scope="module")
def blocks() -> tuple[dict[str, str], list[Block]]:
    return parse(FILE.read_text())


def test_the_file_covers_every_endpoint(
    blocks: tuple[dict[str, str], list[Block]], api: Pipeline
) -> None:
    _, found = blocks
    with api.client() as client:
        spec = client.get("/schema/openapi.json").json()
    endpoints = {
        (method.upper(), re.sub(r"\{\w+\}", "{}", path))
        for path, item in spec["paths"].items()
        for method in item
    }
    covered = {(block.method, _template(block.url)) for block in found}
    assert endpoints <= covered
    assert {("GET", "/schema/docs"), ("GET", "{}/metrics")} <= covered


def test_every_request_gets_the_status_its_title_promises(
    blocks: tuple[dict[str, str], list[Block]], api: Pipeline
) -> None:
    variables, found = blocks
    # What a developer pastes from `make token`: the seed customer's token, and nothing else.
    token = api.key.customer()
    metrics = api.metrics_url.removesuffix("/metrics")
    run = Run({**variables, "host": api.api_url, "token": token, "metrics": metrics})
    ids_by_key: dict[str, set[str]] = {}
    with httpx.Client(timeout=10) as client:
        for block in found:
            headers = [(name, run.fill(value)) for name, value in block.headers]
            response = client.request(
                block.method, run.fill(block.url), headers=headers, content=run.fill(block.body)
            )
            assert response.status_code == block.expected, (block.title, response.text)
            if response.headers.get("content-type") == "application/json":
                body = response.json()
                if block.name:
                    run.bodies[block.name] = body
                key = dict(headers).get("Idempotency-Key")
                if key and response.status_code == 201:
                    ids_by_key.setdefault(key, set()).add(body["order"]["id"])
    # The retry with the same Idempotency-Key answered with the same order.
    assert ids_by_key and all(len(ids) == 1 for ids in ids_by_key.values())
