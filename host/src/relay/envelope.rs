//! An outbox row as the message the relay publishes, or the reason it is refused.

use serde_json::value::RawValue;

use super::outbox::Claimed;
use crate::amqp::Outgoing;
use crate::config::Config;
use crate::model::{Envelope, Op, ENVELOPE_VERSION};

/// The message for `row`, or why it is refused (whitelist, malformed row): a refused row is
/// marked dead with that reason, never published.
pub fn outgoing(config: &Config, row: &Claimed) -> Result<Outgoing, String> {
    let op = Op::from_code(&row.operation)
        .ok_or_else(|| format!("refused: operation `{}` is not I, U or D", row.operation))?;
    if !config.allows(&row.table_name, op) {
        return Err(format!(
            "refused: table `{}` operation `{}` is not whitelisted (add it to [tables.{}] ops in \
             the config, then replay)",
            row.table_name, row.operation, row.table_name
        ));
    }
    let payload = RawValue::from_string(row.payload.clone()).map_err(|e| {
        format!(
            "refused: payload of table `{}` is not JSON: {e}",
            row.table_name
        )
    })?;
    let envelope = Envelope {
        v: ENVELOPE_VERSION,
        correlation_id: row.correlation_id.to_string(),
        outbox_id: row.id,
        unit: row.unit_id,
        table: row.table_name.clone(),
        op: op.code().to_string(),
        origin: row.origin_unit,
        created_at: row.created_at.to_rfc3339(),
        payload,
    };
    let body = serde_json::to_vec(&envelope).map_err(|e| {
        format!(
            "refused: envelope of table `{}` not encodable: {e}",
            row.table_name
        )
    })?;
    Ok(Outgoing {
        exchange: config.amqp.exchange.clone(),
        routing_key: envelope.routing_key(&config.amqp.exchange),
        properties: envelope.properties(),
        body,
    })
}
