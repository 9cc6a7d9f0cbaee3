-- The API's create-order transaction for pgbench, statement for statement as SQLAlchemy sends
-- it (captured with log_statement=all on the bench's PostgreSQL): BEGIN, the order with
-- RETURNING, its item, its first history row, its order.created outbox row, COMMIT. Values the
-- API binds as parameters are pgbench variables here; the JSON documents are the seed order's.
-- Run: pgbench -n -M prepared -f bench/create_order.sql -c C -j 2 -T SECONDS DATABASE_URL
-- (-M prepared: psycopg prepares a statement after its fifth execution on a connection.)
\set customer random(1, 1000000)
BEGIN;
INSERT INTO orders (id, customer_id, email, total_amount, currency, metadata, shipping_address, billing_address)
VALUES (gen_random_uuid(), md5(:customer::text)::UUID, 'customer@example.com'::VARCHAR, 149.97, 'USD'::VARCHAR,
        '{"run": "pgbench", "source": "bench"}'::JSONB,
        '{"city": "Minsk", "state": "MI", "street": "Main St, 1", "country": "BY", "zip_code": "220030"}'::JSONB,
        '{"city": "Minsk", "state": "MI", "street": "Main St, 1", "country": "BY", "zip_code": "220030"}'::JSONB)
RETURNING orders.id, orders.customer_id, orders.email, orders.status, orders.total_amount, orders.currency,
          orders.metadata, orders.shipping_address, orders.billing_address, orders.version,
          orders.created_at, orders.updated_at, gen_random_uuid() AS event_id, gen_random_uuid() AS request_id
\gset o_
INSERT INTO order_items (order_id, position, product_id, name, price, quantity)
VALUES (:o_id::UUID, 0::INTEGER, '456e7890-e89b-12d3-a456-426614174001'::UUID, 'Test Product'::VARCHAR, 49.99, 3::INTEGER)
RETURNING order_items.id;
INSERT INTO order_status_history (order_id, version, from_status, to_status, cause, cause_id, reason, changed_at)
VALUES (:o_id::UUID, 1::INTEGER, NULL::VARCHAR, 'pending'::VARCHAR, 'api'::VARCHAR, :o_request_id::VARCHAR, NULL::VARCHAR,
        :o_created_at::TIMESTAMP WITH TIME ZONE)
RETURNING order_status_history.id;
INSERT INTO outbox (id, topic, key, event_type, subject, payload, headers)
VALUES (:o_event_id::UUID, 'orders'::VARCHAR, :o_customer_id::VARCHAR, 'order.created'::VARCHAR, :o_id::VARCHAR,
        CAST(('{"order_id":"' || :o_id || '","customer_id":"' || :o_customer_id || '","email":"customer@example.com","status":"pending","total_amount":149.97,"currency":"USD","items":[{"product_id":"456e7890-e89b-12d3-a456-426614174001","name":"Test Product","price":49.99,"quantity":3}],"metadata":{"source":"bench","run":"pgbench"},"shipping_address":{"street":"Main St, 1","city":"Minsk","state":"MI","country":"BY","zip_code":"220030"},"billing_address":{"street":"Main St, 1","city":"Minsk","state":"MI","country":"BY","zip_code":"220030"},"version":1,"created_at":"' || :o_created_at || '"}')::VARCHAR AS JSON),
        ('{"ce_id": "' || :o_event_id || '", "ce_time": "' || :o_created_at || '", "ce_type": "order.created", "ce_source": "/order-service", "ce_subject": "' || :o_id || '", "content-type": "application/json", "ce_specversion": "1.0", "ce_correlationid": "' || :o_request_id || '"}')::JSONB);
COMMIT;
