//! The demo application's writes, as a real application makes them: inside the caller's
//! transaction, each business statement returns its row image (`to_jsonb(row)` after the change,
//! before it for a delete) and the matching `pg_sync_outbox` rows are inserted AFTER it.

use sqlx::{Postgres, Transaction};

use super::data::{decimal, Customer, Product};

/// The caller's open transaction.
pub type Tx<'a> = Transaction<'a, Postgres>;

/// One order line.
#[derive(Debug, Clone)]
pub struct Line {
    pub line_no: i32,
    pub product_id: i64,
    pub quantity_milli: i64,
    pub price_cents: i64,
}

/// A new id from the demo's sequence.
pub async fn next_id(tx: &mut Tx<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT nextval('demo_id_seq')")
        .fetch_one(&mut **tx)
        .await
}

/// Inserts outbox rows: every payload for every unit, payload-major, so each unit receives them in
/// the given order. Returns the rows written.
pub async fn outbox(
    tx: &mut Tx<'_>,
    units: &[i32],
    table: &str,
    op: &str,
    payloads: &[String],
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, $1, $2, p::jsonb \
         FROM unnest($3::text[]) WITH ORDINALITY AS x(p, n) CROSS JOIN unnest($4::int[]) AS u \
         ORDER BY n, u",
    )
    .bind(table)
    .bind(op)
    .bind(payloads)
    .bind(units)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

const CUSTOMER_INSERT: &str = "INSERT INTO customers (id, name, email, city, active, \
     credit_limit, birth_date, external_ref, attributes, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8, $9::jsonb, $10) \
     RETURNING to_jsonb(customers.*)::text";
const CUSTOMER_UPDATE: &str = "UPDATE customers SET name = $2, email = $3, city = $4, \
     active = $5, credit_limit = $6::numeric, birth_date = $7, external_ref = $8, \
     attributes = $9::jsonb, updated_at = $10 WHERE id = $1 \
     RETURNING to_jsonb(customers.*)::text";

/// Inserts (`insert`) or updates a customer; returns its row image.
pub async fn write_customer(
    tx: &mut Tx<'_>,
    id: i64,
    c: &Customer,
    insert: bool,
) -> sqlx::Result<String> {
    let attributes = c.attributes.as_ref().map(|v| v.to_string());
    sqlx::query_scalar(if insert {
        CUSTOMER_INSERT
    } else {
        CUSTOMER_UPDATE
    })
    .bind(id)
    .bind(&c.name)
    .bind(&c.email)
    .bind(&c.city)
    .bind(c.active)
    .bind(&c.credit_limit)
    .bind(c.birth_date)
    .bind(c.external_ref)
    .bind(attributes)
    .bind(c.updated_at)
    .fetch_one(&mut **tx)
    .await
}

const PRODUCT_INSERT: &str = "INSERT INTO products (id, sku, description, price, stock, \
     discontinued) VALUES ($1, $2, $3, $4::numeric, $5, $6) RETURNING to_jsonb(products.*)::text";
const PRODUCT_UPDATE: &str = "UPDATE products SET sku = $2, description = $3, \
     price = $4::numeric, stock = $5, discontinued = $6 WHERE id = $1 \
     RETURNING to_jsonb(products.*)::text";

/// Inserts (`insert`) or updates a product; returns its row image.
pub async fn write_product(
    tx: &mut Tx<'_>,
    id: i64,
    p: &Product,
    insert: bool,
) -> sqlx::Result<String> {
    sqlx::query_scalar(if insert {
        PRODUCT_INSERT
    } else {
        PRODUCT_UPDATE
    })
    .bind(id)
    .bind(&p.sku)
    .bind(&p.description)
    .bind(decimal(p.price_cents, 2))
    .bind(p.stock)
    .bind(p.discontinued)
    .fetch_one(&mut **tx)
    .await
}

/// Deletes a customer or product by id; returns the row image before deletion.
pub async fn delete_by_id(tx: &mut Tx<'_>, table: &str, id: i64) -> sqlx::Result<String> {
    let sql = match table {
        "customers" => "DELETE FROM customers WHERE id = $1 RETURNING to_jsonb(customers.*)::text",
        "products" => "DELETE FROM products WHERE id = $1 RETURNING to_jsonb(products.*)::text",
        _ => "DELETE FROM orders WHERE id = $1 RETURNING to_jsonb(orders.*)::text",
    };
    sqlx::query_scalar(sql).bind(id).fetch_one(&mut **tx).await
}

/// A new order.
pub struct NewOrder<'a> {
    pub id: i64,
    pub unit: i32,
    pub customer_id: i64,
    pub ordered_at: chrono::DateTime<chrono::Utc>,
    pub status: &'a str,
    pub total_cents: i64,
    pub notes: Option<String>,
}

/// Inserts an order; returns its row image.
pub async fn insert_order(tx: &mut Tx<'_>, o: &NewOrder<'_>) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "INSERT INTO orders (id, unit_id, customer_id, ordered_at, status, total, notes) \
         VALUES ($1, $2, $3, $4, $5, $6::numeric, $7) RETURNING to_jsonb(orders.*)::text",
    )
    .bind(o.id)
    .bind(o.unit)
    .bind(o.customer_id)
    .bind(o.ordered_at)
    .bind(o.status)
    .bind(decimal(o.total_cents, 2))
    .bind(&o.notes)
    .fetch_one(&mut **tx)
    .await
}

/// Inserts an order's lines; returns their row images in line order.
pub async fn insert_lines(
    tx: &mut Tx<'_>,
    order_id: i64,
    lines: &[Line],
) -> sqlx::Result<Vec<String>> {
    let line_nos: Vec<i32> = lines.iter().map(|l| l.line_no).collect();
    let products: Vec<i64> = lines.iter().map(|l| l.product_id).collect();
    let quantities: Vec<String> = lines.iter().map(|l| decimal(l.quantity_milli, 3)).collect();
    let prices: Vec<String> = lines.iter().map(|l| decimal(l.price_cents, 2)).collect();
    let mut rows: Vec<(i32, String)> = sqlx::query_as(
        "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) \
         SELECT $1, l, p, q::numeric, pr::numeric \
         FROM unnest($2::int[], $3::bigint[], $4::text[], $5::text[]) AS x(l, p, q, pr) \
         ORDER BY l RETURNING line_no, to_jsonb(order_items.*)::text",
    )
    .bind(order_id)
    .bind(line_nos)
    .bind(products)
    .bind(quantities)
    .bind(prices)
    .fetch_all(&mut **tx)
    .await?;
    rows.sort_by_key(|(n, _)| *n);
    Ok(rows.into_iter().map(|(_, p)| p).collect())
}

/// Changes an order's status and notes; returns its row image.
pub async fn update_order(
    tx: &mut Tx<'_>,
    id: i64,
    status: &str,
    notes: &Option<String>,
) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "UPDATE orders SET status = $2, notes = $3 WHERE id = $1 RETURNING \
         to_jsonb(orders.*)::text",
    )
    .bind(id)
    .bind(status)
    .bind(notes)
    .fetch_one(&mut **tx)
    .await
}

/// Changes one line's quantity and price; returns its row image.
pub async fn update_line(tx: &mut Tx<'_>, order_id: i64, line: &Line) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "UPDATE order_items SET quantity = $3::numeric, unit_price = $4::numeric \
         WHERE order_id = $1 AND line_no = $2 RETURNING to_jsonb(order_items.*)::text",
    )
    .bind(order_id)
    .bind(line.line_no)
    .bind(decimal(line.quantity_milli, 3))
    .bind(decimal(line.price_cents, 2))
    .fetch_one(&mut **tx)
    .await
}

/// Deletes one line (or all lines when `line_no` is None); returns the images in line order.
pub async fn delete_lines(
    tx: &mut Tx<'_>,
    order_id: i64,
    line_no: Option<i32>,
) -> sqlx::Result<Vec<String>> {
    let mut rows: Vec<(i32, String)> = sqlx::query_as(
        "DELETE FROM order_items WHERE order_id = $1 AND ($2::int IS NULL OR line_no = $2) \
         RETURNING line_no, to_jsonb(order_items.*)::text",
    )
    .bind(order_id)
    .bind(line_no)
    .fetch_all(&mut **tx)
    .await?;
    rows.sort_by_key(|(n, _)| *n);
    Ok(rows.into_iter().map(|(_, p)| p).collect())
}

/// Recomputes an order's total from its lines; returns its row image.
pub async fn retotal_order(tx: &mut Tx<'_>, id: i64) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "UPDATE orders SET total = (SELECT COALESCE(sum(round(quantity * unit_price, 2)), 0) \
         FROM order_items WHERE order_id = $1) WHERE id = $1 RETURNING to_jsonb(orders.*)::text",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
}
