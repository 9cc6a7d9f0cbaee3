"""A message that failed for a reason since fixed goes back from the DLQ and is applied."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg

from scripts.stack.paths import REPO
from scripts.stack.processes import child_env
from scripts.stack.waiting import wait_for
from tests.support import kcat
from tests.support.pipeline import SEED_ORDER, Pipeline, Topics
from tests.support.servers import KafkaServer

BUG = """
CREATE FUNCTION refuse_shipping() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.to_status = 'shipped' THEN RAISE EXCEPTION 'shipping is broken today'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_shipping BEFORE INSERT ON order_status_history
    FOR EACH ROW EXECUTE FUNCTION refuse_shipping();
"""


def test_replay_after_the_fix(
    running_pipeline: Pipeline, kafka: KafkaServer, topics: Topics, database_url: str
) -> None:
    with running_pipeline.client() as client:
        order_id = client.post("/api/v1/orders", json=SEED_ORDER).json()["order"]["id"]
    running_pipeline.wait_for_status(order_id, "confirmed")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(BUG)  # a bug ships: every shipment fails

    event_id = str(uuid.uuid4())
    headers = {
        "ce_specversion": "1.0",
        "ce_id": event_id,
        "ce_source": "/fulfillment",
        "ce_type": "order.shipped",
        "ce_subject": order_id,
    }
    kcat.produce(
        kafka.client_config(),
        topics.fulfillment,
        b"{}",
        key=SEED_ORDER["customer_id"],
        headers=headers,
    )
    dead = wait_for(
        lambda: kcat.read_all(kafka.client_config(), topics.dlq), timeout=60, what="the DLQ"
    )
    assert [record.headers["ce_id"] for record in dead] == [event_id]
    assert "shipping is broken today" in dead[0].headers["dlq_exception"]
    assert dead[0].headers["dlq_reason"].startswith("the database refused it (SQLSTATE P0001)")
    assert running_pipeline.order_status(order_id) == "confirmed"

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER refuse_shipping ON order_status_history")  # the fix is deployed
    dry = replay_dlq(running_pipeline, "--dry-run")
    assert "1 message(s) to replay" in dry.stdout
    replay = replay_dlq(running_pipeline)
    assert "1 message(s) replayed" in replay.stdout

    running_pipeline.wait_for_status(order_id, "shipped")
    again = replay_dlq(running_pipeline)
    assert "0 message(s) replayed" in again.stdout  # the replay group remembers where it was
    replayed = [
        r
        for r in kcat.read_all(kafka.client_config(), topics.fulfillment)
        if r.headers.get("ce_id") == event_id
    ]
    assert len(replayed) == 2  # the original and its replay
    assert not any(name.startswith("dlq_") for name in replayed[1].headers)


def test_replay_sends_letters_only_to_topics_the_consumer_reads(
    running_pipeline: Pipeline, kafka: KafkaServer, topics: Topics
) -> None:
    """The DLQ is no back door: a letter naming any other topic is refused."""
    letter = {"ce_specversion": "1.0", "ce_id": str(uuid.uuid4()), "dlq_reason": "x"}
    elsewhere = f"{topics.orders}.elsewhere"
    kafka.create_topics({elsewhere: 1})
    for target in (elsewhere, topics.dlq, "__consumer_offsets"):
        kcat.produce(
            kafka.client_config(),
            topics.dlq,
            b"{}",
            headers={**letter, "dlq_original_topic": target},
        )
    kcat.produce(kafka.client_config(), topics.dlq, b"{}", headers=letter)  # names no topic at all
    result = replay_dlq(running_pipeline, check=False)
    assert result.returncode == 1, result
    assert "0 message(s) replayed" in result.stdout and "4 refused" in result.stdout
    assert result.stdout.count("refusing offset") == 4
    assert kcat.read_all(kafka.client_config(), elsewhere) == []
    assert len(kcat.read_all(kafka.client_config(), topics.dlq)) == 4  # nothing written back to it


def replay_dlq(
    pipeline: Pipeline, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`python -m consumer replay-dlq`, as an operator runs it, with the pipeline's settings."""
    return subprocess.run(
        [sys.executable, "-m", "consumer", "replay-dlq", *args],
        cwd=REPO,
        env=child_env({**pipeline.env, **pipeline.identities["admin"]}),
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )
