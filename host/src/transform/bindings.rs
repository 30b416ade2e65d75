//! Generated wasmtime bindings of the `transform` world and the conversions to and from the
//! host mirror types, so nothing outside this folder sees generated code.

use super::types;
use crate::model;

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

pub(crate) fn change_to_wit(c: &model::Change, settings: &str) -> wit::Change {
    wit::Change {
        table: c.table.clone(),
        op: match c.op {
            model::Op::Insert => wit::Operation::Insert,
            model::Op::Update => wit::Operation::Update,
            model::Op::Delete => wit::Operation::Delete,
        },
        direction: match c.direction {
            model::Direction::Downstream => wit::Direction::Downstream,
            model::Direction::Upstream => wit::Direction::Upstream,
        },
        unit: c.unit,
        correlation_id: c.correlation_id.clone(),
        sequence: c.sequence,
        payload: c.payload.clone(),
        settings: settings.to_string(),
    }
}

fn value_from_wit(v: wit::Value) -> model::Value {
    match v {
        wit::Value::Null => model::Value::Null,
        wit::Value::Int(i) => model::Value::Int(i),
        wit::Value::Float(f) => model::Value::Float(f),
        wit::Value::Decimal(s) => model::Value::Decimal(s),
        wit::Value::Text(s) => model::Value::Text(s),
        wit::Value::Date(s) => model::Value::Date(s),
        wit::Value::Time(s) => model::Value::Time(s),
        wit::Value::Timestamp(s) => model::Value::Timestamp(s),
        wit::Value::Blob(b) => model::Value::Blob(b),
        wit::Value::NewId(k) => model::Value::NewId(k),
    }
}

pub(crate) fn output_from_wit(o: wit::Output) -> model::Output {
    model::Output {
        row_key: o.row_key,
        statements: o
            .statements
            .into_iter()
            .map(|s| model::Statement {
                sql: s.sql,
                params: s.params.into_iter().map(value_from_wit).collect(),
            })
            .collect(),
        id_claims: o
            .id_claims
            .into_iter()
            .map(|c| model::IdClaim {
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
