-- The demo application's own schema in PostgreSQL (the "pax" sales domain). Not a ponte table:
-- the application writes these rows and, in the same transaction, its pg_sync_outbox rows.
-- Customers and products are sent to every unit; an order and its items go to the order's unit.
CREATE TABLE IF NOT EXISTS customers (
    id            BIGINT PRIMARY KEY,
    name          VARCHAR(100) NOT NULL,
    email         VARCHAR(120),
    city          VARCHAR(60),
    active        BOOLEAN NOT NULL DEFAULT true,
    credit_limit  NUMERIC(18,2),
    birth_date    DATE,
    external_ref  UUID,
    attributes    JSONB,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS products (
    id            BIGINT PRIMARY KEY,
    sku           VARCHAR(30) NOT NULL,
    description   VARCHAR(120) NOT NULL,
    price         NUMERIC(18,2) NOT NULL,
    stock         INTEGER NOT NULL DEFAULT 0,
    discontinued  BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS orders (
    id            BIGINT PRIMARY KEY,
    unit_id       INTEGER NOT NULL,
    customer_id   BIGINT NOT NULL REFERENCES customers (id),
    ordered_at    TIMESTAMPTZ NOT NULL,
    status        VARCHAR(12) NOT NULL,
    total         NUMERIC(18,2) NOT NULL,
    notes         TEXT
);

CREATE TABLE IF NOT EXISTS order_items (
    order_id      BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no       INTEGER NOT NULL,
    product_id    BIGINT NOT NULL REFERENCES products (id),
    quantity      NUMERIC(12,3) NOT NULL,
    unit_price    NUMERIC(18,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Ids of the demo application's customers, products and orders (`ponte demo load` allocates from it).
CREATE SEQUENCE IF NOT EXISTS demo_id_seq;
