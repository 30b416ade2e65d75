//! wasm32 only: the wit-bindgen bindings of `wit/transform.wit` and the conversions between them
//! and the SDK's native types, used by `export_transform!`. Nothing else touches generated code.

use crate::types as native;
use crate::Transform;

/// Generated bindings of the `transform` world; the export macro is `__ponte_export`.
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "ponte:transform/transform@1.0.0",
        pub_export_macro: true,
        export_macro_name: "__ponte_export",
        default_bindings_module: "ponte_transform_sdk::guest::bindings",
        runtime_path: "ponte_transform_sdk::guest::rt",
    });
}

/// The wit-bindgen runtime, re-exported so transform crates need no direct dependency.
#[doc(hidden)]
pub use wit_bindgen::rt;

use bindings::ponte::transform::types as wit;

fn change_from_wit(c: wit::Change) -> native::Change {
    native::Change {
        table: c.table,
        op: match c.op {
            wit::Operation::Insert => native::Op::Insert,
            wit::Operation::Update => native::Op::Update,
            wit::Operation::Delete => native::Op::Delete,
        },
        direction: match c.direction {
            wit::Direction::Downstream => native::Direction::Downstream,
            wit::Direction::Upstream => native::Direction::Upstream,
        },
        unit: c.unit,
        correlation_id: c.correlation_id,
        sequence: c.sequence,
        payload: c.payload,
        settings: c.settings,
    }
}

fn value_to_wit(v: native::Value) -> wit::Value {
    match v {
        native::Value::Null => wit::Value::Null,
        native::Value::Int(i) => wit::Value::Int(i),
        native::Value::Float(f) => wit::Value::Float(f),
        native::Value::Decimal(s) => wit::Value::Decimal(s),
        native::Value::Text(s) => wit::Value::Text(s),
        native::Value::Date(s) => wit::Value::Date(s),
        native::Value::Time(s) => wit::Value::Time(s),
        native::Value::Timestamp(s) => wit::Value::Timestamp(s),
        native::Value::Blob(b) => wit::Value::Blob(b),
        native::Value::NewId(k) => wit::Value::NewId(k),
    }
}

fn output_to_wit(o: native::Output) -> wit::Output {
    wit::Output {
        row_key: o.row_key,
        statements: o
            .statements
            .into_iter()
            .map(|s| wit::Statement {
                sql: s.sql,
                params: s.params.into_iter().map(value_to_wit).collect(),
            })
            .collect(),
        id_claims: o
            .id_claims
            .into_iter()
            .map(|c| wit::IdClaim {
                indice_key: c.indice_key,
                id: c.id,
            })
            .collect(),
    }
}

fn error_to_wit(e: native::TransformError) -> wit::TransformError {
    wit::TransformError {
        kind: match e.kind {
            native::ErrorKind::BadPayload => wit::ErrorKind::BadPayload,
            native::ErrorKind::InvalidValue => wit::ErrorKind::InvalidValue,
            native::ErrorKind::TooLong => wit::ErrorKind::TooLong,
            native::ErrorKind::Unsupported => wit::ErrorKind::Unsupported,
            native::ErrorKind::BadSettings => wit::ErrorKind::BadSettings,
            native::ErrorKind::Internal => wit::ErrorKind::Internal,
        },
        field: e.field,
        message: e.message,
    }
}

/// `describe` of `T` in WIT types.
pub fn describe<T: Transform>() -> wit::Info {
    let i = T::describe();
    wit::Info {
        name: i.name,
        version: i.version,
        tables: i.tables,
        writes: i.writes,
    }
}

/// `transform` of `T` in WIT types.
pub fn transform<T: Transform>(change: wit::Change) -> Result<wit::Output, wit::TransformError> {
    T::transform(change_from_wit(change))
        .map(output_to_wit)
        .map_err(error_to_wit)
}
