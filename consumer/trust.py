"""Which events a topic may carry: trust comes from the topic an event arrives on.

Our own topics (KAFKA_TOPIC and the routed ones) are written by our relay only, so
an event there that is not signed with our source was written by someone else. Each
inbound topic (KAFKA_INBOUND_TOPICS) carries the event types its configuration
allows, from the one source configured for it. Anything else is rejected: recorded
with the reason, counted and logged, never applied. Kafka ACLs decide who may write a
topic; this decides what a topic may say.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.config import InboundTopic, KafkaSettings
from app.events.cloudevents import IncomingEvent


class TopicTrust:
    def __init__(
        self, own_source: str, own_topics: Iterable[str], inbound: Iterable[InboundTopic]
    ) -> None:
        self.own_source = own_source
        self._own_topics = frozenset(own_topics)
        self._inbound = {rule.topic: rule for rule in inbound}

    @classmethod
    def of(cls, kafka: KafkaSettings) -> TopicTrust:
        return cls(kafka.source, kafka.own_topics, kafka.inbound)

    def is_own(self, topic: str) -> bool:
        return topic in self._own_topics

    def refusal(self, event: IncomingEvent, topic: str) -> str | None:
        """None if `topic` may carry `event`; otherwise why not, in one line."""
        if topic in self._own_topics:
            if event.source != self.own_source:
                return f"only this service writes {topic}: source {event.source!r} is not ours"
            return None
        rule = self._inbound.get(topic)
        if rule is None:
            return f"{topic} is not a topic this service reads"
        if event.source != rule.source:
            return f"{topic} carries events from {rule.source} only, not {event.source!r}"
        if event.type not in rule.types:
            allowed = ", ".join(sorted(rule.types))
            return f"{topic} may carry {allowed} only, not {event.type!r}"
        return None
