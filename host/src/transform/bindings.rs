//! Generated wasmtime bindings of the `transform` world and the conversions to and from the
//! host mirror types, so nothing outside this folder sees generated code.

use super::types;

mod generated {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
    });
}

use generated::ponte::transform::types as wit;
pub(crate) use generated::{Transform, TransformPre};

/// The generated `change` record, as the pool passes it to a call.
pub(crate) type WitChange = wit::Change;

pub(crate) fn change_to_wit(c: &types::Change, settings: &str) -> wit::Change {
    wit::Change {
        table: c.table.clone(),
        op: match c.op {
            types::Op::Insert => wit::Operation::Insert,
            types::Op::Update => wit::Operation::Update,
            types::Op::Delete => wit::Operation::Delete,
        },
        direction: match c.direction {
            types::Direction::Downstream => wit::Direction::Downstream,
            types::Direction::Upstream => wit::Direction::Upstream,
        },
        unit: c.unit,
        correlation_id: c.correlation_id.clone(),
        sequence: c.sequence,
        payload: c.payload.clone(),
        settings: settings.to_string(),
    }
}

fn value_from_wit(v: wit::Value) -> types::Value {
    match v {
        wit::Value::Null => types::Value::Null,
        wit::Value::Int(i) => types::Value::Int(i),
        wit::Value::Float(f) => types::Value::Float(f),
        wit::Value::Decimal(s) => types::Value::Decimal(s),
        wit::Value::Text(s) => types::Value::Text(s),
        wit::Value::Date(s) => types::Value::Date(s),
        wit::Value::Time(s) => types::Value::Time(s),
        wit::Value::Timestamp(s) => types::Value::Timestamp(s),
        wit::Value::Blob(b) => types::Value::Blob(b),
        wit::Value::NewId(k) => types::Value::NewId(k),
    }
}

pub(crate) fn output_from_wit(o: wit::Output) -> types::Output {
    types::Output {
        row_key: o.row_key,
        statements: o
            .statements
            .into_iter()
            .map(|s| types::Statement {
                sql: s.sql,
                params: s.params.into_iter().map(value_from_wit).collect(),
            })
            .collect(),
        id_claims: o
            .id_claims
            .into_iter()
            .map(|c| types::IdClaim {
                indice_key: c.indice_key,
                id: c.id,
            })
            .collect(),
    }
}

pub(crate) fn error_from_wit(e: wit::TransformError) -> types::GuestError {
    types::GuestError {
        kind: match e.kind {
            wit::ErrorKind::BadPayload => types::ErrorKind::BadPayload,
            wit::ErrorKind::InvalidValue => types::ErrorKind::InvalidValue,
            wit::ErrorKind::TooLong => types::ErrorKind::TooLong,
            wit::ErrorKind::Unsupported => types::ErrorKind::Unsupported,
            wit::ErrorKind::BadSettings => types::ErrorKind::BadSettings,
            wit::ErrorKind::Internal => types::ErrorKind::Internal,
        },
        field: e.field,
        message: e.message,
    }
}

pub(crate) fn info_from_wit(i: wit::Info) -> types::Info {
    types::Info {
        name: i.name,
        version: i.version,
        tables: i.tables,
        writes: i.writes,
    }
}
