-- The API's create-order write for pgbench, as SQLAlchemy sends it for a request without an
-- Idempotency-Key (app/db/orders.py `_PLACE`, run on its own in autocommit): ONE statement
-- writing the order, its item, its first history row and its order.created outbox row. The
-- API binds the order's id and times (its own clock) and the event it built in Python; here
-- a leading CTE makes the id and time, and the JSON documents are the seed order's.
-- Run: pgbench -n -M prepared -f bench/create_order.sql -c C -j 2 -T SECONDS DATABASE_URL
-- (-M prepared: psycopg prepares a statement after its fifth execution on a connection.)
\set customer random(1, 1000000)
WITH new AS (SELECT gen_random_uuid() AS id, md5(:customer::text)::UUID AS customer_id,
                    now() AS at, gen_random_uuid() AS event_id, gen_random_uuid() AS request_id),
placed_items AS (
  INSERT INTO order_items (order_id, position, product_id, name, price, quantity)
  SELECT new.id, item.position, item.product_id, item.name, item.price, item.quantity
    FROM new, jsonb_to_recordset(CAST('[{"position":0,"product_id":"456e7890-e89b-12d3-a456-426614174001","name":"Test Product","price":49.99,"quantity":3}]'::VARCHAR AS JSONB))
         AS item(position INTEGER, product_id UUID, name TEXT, price NUMERIC, quantity INTEGER)),
placed AS (
  INSERT INTO orders (id, customer_id, email, status, total_amount, currency, metadata,
                      shipping_address, billing_address, version, created_at, updated_at)
  SELECT new.id, new.customer_id, 'customer@example.com'::VARCHAR, 'pending'::VARCHAR, 149.97,
         'USD'::VARCHAR, '{"run": "pgbench", "source": "bench"}'::JSONB,
         '{"city": "Minsk", "state": "MI", "street": "Main St, 1", "country": "BY", "zip_code": "220030"}'::JSONB,
         '{"city": "Minsk", "state": "MI", "street": "Main St, 1", "country": "BY", "zip_code": "220030"}'::JSONB,
         1, new.at, new.at
    FROM new
  RETURNING orders.id, orders.version, orders.status, orders.created_at),
first_entry AS (
  INSERT INTO order_status_history (order_id, version, from_status, to_status, cause, cause_id,
                                    reason, changed_at, actor)
  SELECT placed.id, placed.version, NULL, placed.status, 'api'::VARCHAR, new.request_id::VARCHAR,
         NULL::VARCHAR, placed.created_at, 'bench'::VARCHAR
    FROM placed, new),
announced AS (
  INSERT INTO outbox (id, topic, key, event_type, subject, payload, headers)
  SELECT new.event_id, 'orders'::VARCHAR, new.customer_id::VARCHAR, 'order.created'::VARCHAR,
         new.id::VARCHAR,
         CAST(('{"order_id":"' || new.id || '","customer_id":"' || new.customer_id || '","email":"customer@example.com","status":"pending","total_amount":149.97,"currency":"USD","items":[{"product_id":"456e7890-e89b-12d3-a456-426614174001","name":"Test Product","price":49.99,"quantity":3}],"metadata":{"source":"bench","run":"pgbench"},"shipping_address":{"street":"Main St, 1","city":"Minsk","state":"MI","country":"BY","zip_code":"220030"},"billing_address":{"street":"Main St, 1","city":"Minsk","state":"MI","country":"BY","zip_code":"220030"},"version":1,"created_at":"' || new.at || '"}')::VARCHAR AS JSON),
         ('{"ce_id": "' || new.event_id || '", "ce_time": "' || new.at || '", "ce_type": "order.created", "ce_source": "/order-service", "ce_subject": "' || new.id || '", "content-type": "application/json", "ce_specversion": "1.0", "ce_correlationid": "' || new.request_id || '"}')::JSONB
    FROM new)
SELECT placed.id FROM placed;
