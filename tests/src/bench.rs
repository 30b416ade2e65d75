//! Shared pieces of the benchmarks: the raw limits of the servers, measured in the same run as
//! ponte's own figures (PostgreSQL outbox writes, confirmed pipelined publishes, consumes, packed
//! Firebird inserts), and the row shape they all use.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueuePurgeOptions,
};
use lapin::{BasicProperties, Confirmation};
use ponte::amqp::Topology;
use ponte::config::AmqpConfig;
use ponte::firebird::FbConn;
use rsfbclient::prelude::*;
use sqlx::PgPool;

/// Rows per EXECUTE BLOCK in the packed insert.
pub const ROWS_PER_BLOCK: usize = 25;
/// The plain insert of one product row.
pub const RAW_INSERT: &str = "INSERT INTO PRODUTOS (ID, SKU, DESCRICAO, PRECO, ESTOQUE, DESCONTINUADO) VALUES (?, ?, ?, ?, ?, ?)";

/// One product row of the raw inserts.
pub fn raw_row(id: i64) -> (i64, String, String, String, i64, i64) {
    (
        id,
        format!("RAW-{id}"),
        format!("Açúcar cristal 5 kg nº {id}"),
        "1234567.89".to_string(),
        id % 1000,
        0,
    )
}

/// Rows per second of plain INSERTs packed ROWS_PER_BLOCK per EXECUTE BLOCK, `batch` per transaction.
pub fn raw_packed_inserts(
    conn: &mut FbConn,
    ids: std::ops::Range<i64>,
    batch: usize,
) -> anyhow::Result<f64> {
    let ids: Vec<i64> = ids.collect();
    let started = Instant::now();
    for batch in ids.chunks(batch) {
        conn.begin_transaction()?;
        for block in batch.chunks(ROWS_PER_BLOCK) {
            let (mut header, mut body, mut params) = (Vec::new(), String::new(), Vec::new());
            for (i, &id) in block.iter().enumerate() {
                header.push(format!("i{i} BIGINT = ?, s{i} VARCHAR(30) = ?, d{i} VARCHAR(120) = ?, p{i} VARCHAR(20) = ?, e{i} BIGINT = ?, x{i} SMALLINT = ?"));
                body.push_str(&format!("INSERT INTO PRODUTOS (ID, SKU, DESCRICAO, PRECO, ESTOQUE, DESCONTINUADO) VALUES (:i{i}, :s{i}, :d{i}, :p{i}, :e{i}, :x{i});\n"));
                let (a, b, c, d, e, f) = raw_row(id);
                params.extend([a.into(), b.into(), c.into(), d.into(), e.into(), f.into()]);
            }
            let sql = format!("EXECUTE BLOCK ({}) AS BEGIN\n{body}END", header.join(", "));
            conn.execute::<Vec<rsfbclient::SqlType>>(&sql, params)?;
        }
        conn.commit()?;
    }
    Ok(ids.len() as f64 / started.elapsed().as_secs_f64())
}

/// A products upsert payload, as the demo application writes it.
pub fn product_payload(id: i64) -> String {
    format!(
        r#"{{"id": {id}, "sku": "SKU-{id}", "description": "Açúcar cristal 5 kg nº {id}", "price": 12.34, "stock": {}, "discontinued": false}}"#,
        id % 1000
    )
}

/// Writes products upserts into the outbox as fast as PostgreSQL takes them: `business`
/// transactions, each one row per unit in `units` (product ids from `first_id`). Returns
/// outbox rows/s.
pub async fn write_outbox(
    pg: &PgPool,
    business: i64,
    units: &[i32],
    first_id: i64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per_insert = (1_000 / units.len().max(1)).max(1) as i64;
    let mut next = first_id;
    while next < first_id + business {
        let n = per_insert.min(first_id + business - next);
        insert_products(pg, next, n, units).await?;
        next += n;
    }
    Ok((business * units.len() as i64) as f64 / started.elapsed().as_secs_f64())
}

/// One INSERT of `n` business changes (products `first..first + n`), one outbox row per unit.
pub async fn insert_products(pg: &PgPool, first: i64, n: i64, units: &[i32]) -> anyhow::Result<()> {
    let mut unit_ids = Vec::new();
    let mut payloads = Vec::new();
    for id in first..first + n {
        for u in units {
            unit_ids.push(*u);
            payloads.push(product_payload(id));
        }
    }
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, 'products', 'U', p::jsonb FROM unnest($1::int[], $2::text[]) AS t(u, p)",
    )
    .bind(&unit_ids)
    .bind(&payloads)
    .execute(pg)
    .await?;
    Ok(())
}

/// A connection and a confirm-mode channel with ponte's topology for `units` declared (the same
/// queues, arguments and bindings the host uses).
async fn confirm_channel(
    amqp: &AmqpConfig,
    units: &[i32],
) -> anyhow::Result<(lapin::Connection, lapin::Channel)> {
    let conn =
        lapin::Connection::connect(&amqp.url, lapin::ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut topology = Topology::base(amqp);
    for &unit in units {
        topology.merge(Topology::unit(amqp, unit));
    }
    topology.declare(&ch, amqp).await?;
    Ok((conn, ch))
}

/// Persistent, confirmed, `mandatory` publishes of `rows` messages round-robin to the unit
/// queues (declared from ponte's own topology), `in_flight` confirms outstanding; the queues are
/// purged after and must hold exactly `rows`. Returns messages/s.
pub async fn raw_publish(
    amqp: &AmqpConfig,
    rows: i64,
    in_flight: usize,
    units: &[i32],
) -> anyhow::Result<f64> {
    let (conn, ch) = confirm_channel(amqp, units).await?;
    let options = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let properties = BasicProperties::default().with_delivery_mode(2);
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    for id in 0..rows {
        if pending.len() >= in_flight {
            let confirm: Result<Confirmation, lapin::Error> =
                pending.next().await.context("a confirm")?;
            ensure!(
                matches!(confirm?, Confirmation::Ack(None)),
                "raw publish not routed"
            );
        }
        let unit = units[id as usize % units.len()];
        let key = format!("{}.unit.{unit}.products.U", amqp.exchange);
        let body = product_payload(id);
        let confirm = ch
            .basic_publish(
                amqp.exchange.as_str().into(),
                key.as_str().into(),
                options,
                body.as_bytes(),
                properties.clone(),
            )
            .await?;
        pending.push(confirm);
    }
    while let Some(confirm) = pending.next().await {
        ensure!(
            matches!(confirm?, Confirmation::Ack(None)),
            "raw publish not routed"
        );
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    let queued = purge_units(&ch, amqp, units).await?;
    ensure!(
        queued == rows,
        "raw publish: {queued} messages queued, {rows} sent"
    );
    let _ = conn.close(200, "bench done".into()).await;
    Ok(rate)
}

/// Purges the unit queues; returns the messages they held.
pub async fn purge_units(
    ch: &lapin::Channel,
    amqp: &AmqpConfig,
    units: &[i32],
) -> anyhow::Result<i64> {
    let mut queued = 0i64;
    for &unit in units {
        queued += i64::from(
            ch.queue_purge(
                amqp.unit_queue(unit).as_str().into(),
                QueuePurgeOptions::default(),
            )
            .await?,
        );
    }
    Ok(queued)
}

/// Consumes `rows` messages published beforehand to the first unit's queue, prefetch 1,000,
/// acked in batches of 100 (`multiple`). Returns messages/s of the consume alone.
pub async fn raw_consume(amqp: &AmqpConfig, rows: i64, units: &[i32]) -> anyhow::Result<f64> {
    let unit = units[..1].to_vec();
    raw_publish_keep(amqp, rows, &unit).await?;
    let conn =
        lapin::Connection::connect(&amqp.url, lapin::ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(1_000, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            amqp.unit_queue(unit[0]).as_str().into(),
            "raw-consume".into(),
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await?;
    let started = Instant::now();
    let mut got = 0i64;
    while got < rows {
        let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .context("raw consume stalled")?
            .context("consumer ended")??;
        got += 1;
        if got % 100 == 0 || got == rows {
            delivery
                .acker
                .ack(BasicAckOptions { multiple: true })
                .await?;
        }
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    let _ = conn.close(200, "bench done".into()).await;
    Ok(rate)
}

/// Publishes `rows` messages to the units' queues and leaves them there.
async fn raw_publish_keep(amqp: &AmqpConfig, rows: i64, units: &[i32]) -> anyhow::Result<()> {
    let (conn, ch) = confirm_channel(amqp, units).await?;
    let mut pending = FuturesUnordered::new();
    for id in 0..rows {
        if pending.len() >= 1_000 {
            let _ = pending.next().await;
        }
        let key = format!("{}.unit.{}.products.U", amqp.exchange, units[0]);
        let body = product_payload(id);
        pending.push(
            ch.basic_publish(
                amqp.exchange.as_str().into(),
                key.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?,
        );
    }
    while pending.next().await.is_some() {}
    let _ = conn.close(200, "bench done".into()).await;
    Ok(())
}
