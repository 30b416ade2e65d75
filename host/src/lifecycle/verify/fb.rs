//! A unit's Firebird connection driven from async code: each job moves the connection onto a
//! blocking thread and back, under a deadline (a job past it abandons the connection).

use std::time::Duration;

use crate::config::{FirebirdConfig, Unit};
use crate::firebird::FbConn;

/// One unit's connection, opened on first use.
pub struct FbSlot {
    unit: Unit,
    config: FirebirdConfig,
    conn: Option<FbConn>,
    deadline: Duration,
}

impl FbSlot {
    /// A slot for `unit` (nothing is opened yet).
    pub fn new(unit: &Unit, config: &FirebirdConfig) -> FbSlot {
        FbSlot {
            unit: unit.clone(),
            config: config.clone(),
            conn: None,
            deadline: Duration::from_millis(config.timeout_ms.saturating_mul(4).max(10_000)),
        }
    }

    /// Runs `job` with the connection on a blocking thread.
    pub async fn run<T: Send + 'static>(
        &mut self,
        job: impl FnOnce(&mut FbConn) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let conn = self.conn.take();
        let (database, config, unit) = (
            self.unit.database.clone(),
            self.config.clone(),
            self.unit.id,
        );
        let task = tokio::task::spawn_blocking(move || {
            let mut conn = match conn {
                Some(c) => c,
                None => crate::firebird::connect(&database, &config).map_err(|e| {
                    format!(
                        "cannot connect to unit {unit} ({database}): {}",
                        one_line(&e.to_string())
                    )
                })?,
            };
            let result = job(&mut conn);
            Ok::<_, String>((conn, result))
        });
        match tokio::time::timeout(self.deadline, task).await {
            Ok(Ok(Ok((conn, result)))) => {
                self.conn = Some(conn);
                result.map_err(|e| one_line(&e))
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(join)) => Err(format!(
                "unit {}: reader thread failed: {join}",
                self.unit.id
            )),
            Err(_) => Err(format!(
                "unit {} ({}) did not answer within {:?}",
                self.unit.id, self.unit.database, self.deadline
            )),
        }
    }
}

/// The client's messages span lines; reports keep one line per problem.
pub fn one_line(text: &str) -> String {
    text.replace('\n', " / ")
}
