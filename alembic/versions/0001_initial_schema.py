"""Initial schema: orders, items, status history, outbox, processed events, idempotency keys.

Integrity lives in the database, so it holds for every writer, not only ours:
deferrable constraint triggers check at commit that an order has items and
that its total matches them; item changes recompute the total; the email
domain validates addresses; the outbox numbers each key's events in commit
order.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Advisory-lock classes (first int4 of the two-key form); see app/db/locks.py.
OUTBOX_KEY_LOCK = 7001
OUTBOX_SHARDS = 32

TYPES = r"""
CREATE DOMAIN email_address AS text
    CONSTRAINT email_address_valid CHECK (
        length(VALUE) <= 254
        AND VALUE ~ '^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$'
    );
"""

TABLES = """
CREATE TABLE orders (
    id               uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id      uuid          NOT NULL,
    email            email_address NOT NULL,
    status           text          NOT NULL DEFAULT 'pending'
        CONSTRAINT orders_status_known CHECK (
            status IN ('pending', 'confirmed', 'shipped', 'delivered', 'cancelled', 'failed')),
    total_amount     numeric       NOT NULL DEFAULT 0
        CONSTRAINT orders_total_amount_valid CHECK (total_amount >= 0 AND scale(total_amount) <= 2),
    currency         text          NOT NULL
        CONSTRAINT orders_currency_iso4217 CHECK (currency ~ '^[A-Z]{3}$'),
    metadata         jsonb         NOT NULL DEFAULT '{}'
        CONSTRAINT orders_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    shipping_address jsonb,
    billing_address  jsonb,
    version          integer       NOT NULL DEFAULT 1
        CONSTRAINT orders_version_positive CHECK (version >= 1),
    created_at       timestamptz   NOT NULL DEFAULT now(),
    updated_at       timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX idx_orders_customer_id ON orders (customer_id);
CREATE INDEX idx_orders_status ON orders (status);
CREATE INDEX idx_orders_created_at ON orders (created_at, id);

CREATE TABLE order_items (
    id         uuid    PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id   uuid    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position   integer NOT NULL,
    product_id uuid    NOT NULL,
    name       text    NOT NULL
        CONSTRAINT order_items_name_length CHECK (length(name) BETWEEN 1 AND 200),
    price      numeric NOT NULL
        CONSTRAINT order_items_price_valid CHECK (price >= 0 AND price < 1e8 AND scale(price) <= 2),
    quantity   integer NOT NULL
        CONSTRAINT order_items_quantity_valid CHECK (quantity BETWEEN 1 AND 10000)
);
-- One index serves both "items of an order, in order" and position uniqueness.
CREATE UNIQUE INDEX idx_order_items_order_id ON order_items (order_id, position);

CREATE TABLE order_status_history (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    version     integer     NOT NULL,
    from_status text,
    to_status   text        NOT NULL,
    cause       text        NOT NULL
        CONSTRAINT order_status_history_cause_known CHECK (cause IN ('api', 'event')),
    cause_id    text,
    reason      text,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_status_history_one_per_version UNIQUE (order_id, version)
);

CREATE SEQUENCE outbox_seq AS bigint;
CREATE TABLE outbox (
    id              uuid        PRIMARY KEY,
    seq             bigint      NOT NULL,
    topic           text        NOT NULL,
    key             text        NOT NULL,
    shard           smallint    NOT NULL GENERATED ALWAYS AS (hashtext(key) & SHARDS_MASK) STORED,
    event_type      text        NOT NULL,
    subject         text        NOT NULL,
    payload         json        NOT NULL,  -- json, not jsonb: the relay sends these exact bytes
    headers         jsonb       NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at    timestamptz,
    attempts        integer     NOT NULL DEFAULT 0,  -- failed publish attempts
    last_attempt_at timestamptz,
    last_error      text,
    parked_at       timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_parked ON outbox (key, seq) WHERE parked_at IS NOT NULL AND published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE TABLE processed_events (
    source          text        NOT NULL,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    order_id        uuid,
    outcome         text        NOT NULL
        CONSTRAINT processed_events_outcome_known CHECK (outcome IN ('applied', 'rejected', 'ignored')),
    detail          text,
    topic           text,
    kafka_partition integer,
    kafka_offset    bigint,
    processed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);
CREATE INDEX processed_events_order_id ON processed_events (order_id);

CREATE TABLE idempotency_keys (
    key             text        PRIMARY KEY
        CONSTRAINT idempotency_keys_key_length CHECK (length(key) BETWEEN 1 AND 255),
    request_hash    bytea       NOT NULL,
    order_id        uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    response_status smallint    NOT NULL,
    response_body   bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
CREATE INDEX idempotency_keys_order_id ON idempotency_keys (order_id);
""".replace("SHARDS_MASK", str(OUTBOX_SHARDS - 1))

INTEGRITY = """
-- Deferred to commit: an order and its items are written by several statements.
CREATE FUNCTION check_order_integrity(checked_order uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    stored numeric;
    item_count bigint;
    item_total numeric;
BEGIN
    SELECT total_amount INTO stored FROM orders WHERE id = checked_order;
    IF NOT FOUND THEN
        RETURN;  -- deleted later in the same transaction
    END IF;
    SELECT count(*), coalesce(sum(price * quantity), 0)
      INTO item_count, item_total
      FROM order_items WHERE order_id = checked_order;
    IF item_count = 0 THEN
        RAISE EXCEPTION 'order % has no items', checked_order
            USING ERRCODE = 'check_violation', CONSTRAINT = 'orders_have_items';
    END IF;
    IF stored <> item_total THEN
        RAISE EXCEPTION 'order % total % does not match its items (%)', checked_order, stored, item_total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'orders_total_matches_items';
    END IF;
END $$;

CREATE FUNCTION orders_integrity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM check_order_integrity(NEW.id);
    RETURN NULL;
END $$;

CREATE FUNCTION order_items_integrity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM check_order_integrity(OLD.order_id);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER orders_integrity
    AFTER INSERT OR UPDATE OF total_amount ON orders
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION orders_integrity();

CREATE CONSTRAINT TRIGGER order_items_integrity
    AFTER UPDATE OR DELETE ON order_items
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION order_items_integrity();

-- total_amount follows the items; one UPDATE per statement, none when unchanged.
CREATE FUNCTION order_items_recompute_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE orders o
       SET total_amount = totals.total
      FROM (
          SELECT changed.order_id, coalesce(sum(i.price * i.quantity), 0) AS total
            FROM (SELECT DISTINCT order_id FROM changed_items) changed
            LEFT JOIN order_items i ON i.order_id = changed.order_id
           GROUP BY changed.order_id
      ) totals
     WHERE o.id = totals.order_id
       AND o.total_amount IS DISTINCT FROM totals.total;
    RETURN NULL;
END $$;

CREATE TRIGGER order_items_totals_after_insert
    AFTER INSERT ON order_items REFERENCING NEW TABLE AS changed_items
    FOR EACH STATEMENT EXECUTE FUNCTION order_items_recompute_totals();
CREATE TRIGGER order_items_totals_after_update_new
    AFTER UPDATE ON order_items REFERENCING NEW TABLE AS changed_items
    FOR EACH STATEMENT EXECUTE FUNCTION order_items_recompute_totals();
CREATE TRIGGER order_items_totals_after_update_old
    AFTER UPDATE ON order_items REFERENCING OLD TABLE AS changed_items
    FOR EACH STATEMENT EXECUTE FUNCTION order_items_recompute_totals();
CREATE TRIGGER order_items_totals_after_delete
    AFTER DELETE ON order_items REFERENCING OLD TABLE AS changed_items
    FOR EACH STATEMENT EXECUTE FUNCTION order_items_recompute_totals();

CREATE FUNCTION orders_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER orders_touch_updated_at
    BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_touch_updated_at();
"""

OUTBOX_ORDERING = f"""
-- Events of one key must reach Kafka in commit order. Sequence values are
-- handed out at insert, not at commit, so two writers of one key could commit
-- out of sequence order. Holding a per-key lock until commit before taking the
-- number makes sequence order equal commit order within each key, for every
-- writer of this table.
CREATE FUNCTION outbox_assign_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({OUTBOX_KEY_LOCK}, hashtext(NEW.key));
    NEW.seq := nextval('outbox_seq');
    RETURN NEW;
END $$;

CREATE TRIGGER outbox_assign_seq
    BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_assign_seq();

"""

REPORTING = """
CREATE FUNCTION get_order_statistics(since timestamptz DEFAULT '-infinity')
RETURNS TABLE (
    status text, currency text, order_count bigint,
    total_amount numeric, average_amount numeric,
    first_order_at timestamptz, last_order_at timestamptz
)
LANGUAGE sql STABLE AS $$
    SELECT o.status, o.currency, count(*), sum(o.total_amount), round(avg(o.total_amount), 2),
           min(o.created_at), max(o.created_at)
      FROM orders o
     WHERE o.created_at >= since
     GROUP BY o.status, o.currency
     ORDER BY o.status, o.currency
$$;

CREATE VIEW orders_with_stats AS
SELECT o.id, o.customer_id, o.email, o.status, o.total_amount, o.currency, o.version,
       o.created_at, o.updated_at,
       items.item_count, items.total_quantity,
       history.transitions, history.last_changed_at
  FROM orders o
  CROSS JOIN LATERAL (
      SELECT count(*) AS item_count, coalesce(sum(i.quantity), 0) AS total_quantity
        FROM order_items i WHERE i.order_id = o.id
  ) items
  CROSS JOIN LATERAL (
      SELECT count(*) AS transitions, max(h.changed_at) AS last_changed_at
        FROM order_status_history h WHERE h.order_id = o.id
  ) history;
"""

OUTBOX_INSPECTION = """
CREATE VIEW outbox_backlog AS
SELECT count(*) FILTER (WHERE parked_at IS NULL)                 AS unpublished,
       count(*) FILTER (WHERE parked_at IS NOT NULL)             AS parked,
       min(created_at)                                           AS oldest_created_at,
       coalesce(clock_timestamp() - min(created_at), interval '0') AS oldest_age
  FROM outbox
 WHERE published_at IS NULL;

CREATE VIEW outbox_backlog_by_topic AS
SELECT topic,
       count(*)                                AS unpublished,
       count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
       clock_timestamp() - min(created_at)     AS oldest_age
  FROM outbox
 WHERE published_at IS NULL
 GROUP BY topic;

CREATE VIEW outbox_publish_rate AS
SELECT count(*)                       AS published_last_minute,
       round(count(*) / 60.0, 1)      AS per_second,
       max(published_at)              AS last_published_at
  FROM outbox
 WHERE published_at >= clock_timestamp() - interval '1 minute';

-- Rows that did not go out at the first try: candidates for an operator's look.
CREATE VIEW outbox_failures AS
SELECT id, seq, topic, key, event_type, subject, attempts, last_error, last_attempt_at,
       parked_at, clock_timestamp() - created_at AS age
  FROM outbox
 WHERE published_at IS NULL AND (last_error IS NOT NULL OR attempts > 0 OR parked_at IS NOT NULL)
 ORDER BY seq;

-- An operator's answer to a parked row: send it again (it and its key resume).
CREATE FUNCTION outbox_unpark(parked_id uuid) RETURNS boolean
LANGUAGE sql AS $$
    UPDATE outbox SET parked_at = NULL, attempts = 0, last_error = NULL
     WHERE id = parked_id AND parked_at IS NOT NULL AND published_at IS NULL
    RETURNING true
$$;

-- Published rows are kept for `retention`, then deleted a batch at a time.
CREATE FUNCTION outbox_prune(retention interval, batch integer DEFAULT 1000) RETURNS integer
LANGUAGE sql AS $$
    WITH doomed AS (
        SELECT id FROM outbox
         WHERE published_at < clock_timestamp() - retention
         ORDER BY published_at
         LIMIT batch
         FOR UPDATE SKIP LOCKED
    ), deleted AS (
        DELETE FROM outbox o USING doomed WHERE o.id = doomed.id RETURNING 1
    )
    SELECT count(*)::integer FROM deleted
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS outbox_prune(interval, integer);
DROP FUNCTION IF EXISTS outbox_unpark(uuid);
DROP VIEW IF EXISTS outbox_failures, outbox_publish_rate, outbox_backlog_by_topic, outbox_backlog;
DROP VIEW IF EXISTS orders_with_stats;
DROP FUNCTION IF EXISTS get_order_statistics(timestamptz);
DROP TABLE IF EXISTS idempotency_keys, processed_events, outbox, order_status_history,
                     order_items, orders;
DROP SEQUENCE IF EXISTS outbox_seq;
DROP FUNCTION IF EXISTS outbox_assign_seq(), orders_touch_updated_at(),
                        order_items_recompute_totals(), order_items_integrity(),
                        orders_integrity(), check_order_integrity(uuid);
DROP DOMAIN IF EXISTS email_address;
"""


def upgrade() -> None:
    for block in (TYPES, TABLES, INTEGRITY, OUTBOX_ORDERING, REPORTING, OUTBOX_INSPECTION):
        op.execute(block)


def downgrade() -> None:
    op.execute(DROP)
