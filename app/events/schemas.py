"""JSON Schemas of our events' data, generated from the msgspec types that encode them.

`python -m app.events.schemas` writes them to docs/events/ (what consumers of
the topic read); a test fails when the committed files and the types disagree,
and the end-to-end tests validate real events from Kafka against them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from app.domain.events import EventType, OrderCreated, OrderStatusChanged

DIRECTORY = Path(__file__).resolve().parents[2] / "docs" / "events"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def data_type(event_type: EventType) -> type[msgspec.Struct]:
    return OrderCreated if event_type is EventType.CREATED else OrderStatusChanged


def schema(event_type: EventType) -> dict[str, Any]:
    """The schema of `event_type`'s data (the Kafka record's value)."""
    generated = _money_as_numbers(msgspec.json.schema(data_type(event_type)))
    return {
        "$schema": DIALECT,
        "$id": f"urn:orders:event:{event_type.value}",
        "title": f"{event_type.value} data",
        "description": (
            f"The value of a `{event_type.value}` record on Kafka (CloudEvents binary mode: "
            "the attributes are in ce_* headers)."
        ),
        **generated,
    }


def _money_as_numbers(node: Any) -> Any:
    """msgspec describes Decimal as a string; our encoder writes it as a JSON number."""
    if isinstance(node, dict):
        if node.get("format") == "decimal":
            node = {key: value for key, value in node.items() if key != "format"}
            node["type"] = "number"
        return {key: _money_as_numbers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_money_as_numbers(value) for value in node]
    return node


def files() -> dict[str, str]:
    """File name -> content, for every event type."""
    return {
        f"{event_type.value}.schema.json": json.dumps(schema(event_type), indent=2) + "\n"
        for event_type in EventType
    }


def main() -> int:
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    for name, content in files().items():
        (DIRECTORY / name).write_text(content)
        print(DIRECTORY / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
