//! The broker topology, in one place: the topic exchange, the dead-letter exchange and queue, one
//! durable quorum queue per unit (`{exchange}.unit.{id}` <- `{exchange}.unit.{id}.#`) and, when
//! tables flow upstream, one per origin unit (`{exchange}.upstream.{id}` <-
//! `{exchange}.origin.{id}.#`), each with a single active consumer, a delivery limit and
//! dead-lettering. The host declares exactly this (idempotently) and `ponte broker definitions`
//! prints exactly this as a RabbitMQ definitions file: the two can never drift apart.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use serde_json::{json, Map, Value as Json};

use super::link::{with_timeout, AmqpError};
use crate::config::{AmqpConfig, Config};

/// A queue argument value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Text(String),
    Bool(bool),
    Int(i64),
}

/// One durable queue, its arguments and the binding that feeds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Queue name.
    pub name: String,
    args: Vec<(&'static str, Arg)>,
    /// `(exchange, routing key)` it is bound with.
    pub binding: (String, String),
}

/// Exchanges and queues to declare, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    exchanges: Vec<(String, &'static str)>,
    queues: Vec<QueueSpec>,
}

impl Topology {
    /// The exchanges and the dead-letter queue every role needs.
    pub fn base(config: &AmqpConfig) -> Topology {
        Topology {
            exchanges: vec![
                (config.exchange.clone(), "topic"),
                (config.dead_exchange(), "fanout"),
            ],
            queues: vec![QueueSpec {
                name: config.dead_queue(),
                args: vec![("x-queue-type", Arg::Text("quorum".into()))],
                binding: (config.dead_exchange(), String::new()),
            }],
        }
    }

    /// The base plus the downstream queue of `unit`.
    pub fn unit(config: &AmqpConfig, unit: i32) -> Topology {
        let mut t = Topology::base(config);
        t.queues.push(change_queue(
            config,
            config.unit_queue(unit),
            format!("{}.unit.{unit}.#", config.exchange),
        ));
        t
    }

    /// The base plus the upstream queue of origin `unit`.
    pub fn upstream(config: &AmqpConfig, unit: i32) -> Topology {
        let mut t = Topology::base(config);
        t.queues.push(change_queue(
            config,
            config.upstream_queue(unit),
            format!("{}.origin.{unit}.#", config.exchange),
        ));
        t
    }

    /// Everything a host with this configuration declares: every unit's queue, and every
    /// origin unit's upstream queue when tables flow upstream.
    pub fn of_host(config: &Config) -> Topology {
        let mut t = Topology::base(&config.amqp);
        for unit in config.units() {
            t.merge(Topology::unit(&config.amqp, unit.id));
            if !config.upstream.tables.is_empty() {
                t.merge(Topology::upstream(&config.amqp, unit.id));
            }
        }
        t
    }

    /// Adds `other`'s exchanges and queues that are not here yet.
    pub fn merge(&mut self, other: Topology) {
        for e in other.exchanges {
            if !self.exchanges.contains(&e) {
                self.exchanges.push(e);
            }
        }
        for q in other.queues {
            if !self.queues.iter().any(|mine| mine.name == q.name) {
                self.queues.push(q);
            }
        }
    }

    /// Declares and binds all of it (idempotent; a queue that exists with other arguments is
    /// refused by the broker with PRECONDITION_FAILED).
    pub async fn declare(&self, channel: &Channel, config: &AmqpConfig) -> Result<(), AmqpError> {
        let t = config.timeout();
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for (name, kind) in &self.exchanges {
            let kind = if *kind == "topic" {
                ExchangeKind::Topic
            } else {
                ExchangeKind::Fanout
            };
            let declare = channel.exchange_declare(
                name.as_str().into(),
                kind,
                durable,
                FieldTable::default(),
            );
            with_timeout(t, "exchange.declare", declare).await?;
        }
        for q in &self.queues {
            let options = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            let declare = channel.queue_declare(q.name.as_str().into(), options, q.field_table());
            with_timeout(t, "queue.declare", declare).await?;
            let (exchange, key) = &q.binding;
            let bind = channel.queue_bind(
                q.name.as_str().into(),
                exchange.as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            );
            with_timeout(t, "queue.bind", bind).await?;
        }
        Ok(())
    }

    /// The RabbitMQ definitions document (`rabbitmqctl import_definitions`) for vhost `vhost`.
    pub fn definitions(&self, vhost: &str) -> Json {
        let exchanges: Vec<Json> = self
            .exchanges
            .iter()
            .map(|(name, kind)| {
                json!({"name": name, "vhost": vhost, "type": kind, "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}})
            })
            .collect();
        let queues: Vec<Json> = self
            .queues
            .iter()
            .map(|q| {
                json!({"name": q.name, "vhost": vhost, "durable": true, "auto_delete": false,
                       "arguments": q.json_args()})
            })
            .collect();
        let bindings: Vec<Json> = self
            .queues
            .iter()
            .map(|q| {
                json!({"source": q.binding.0, "vhost": vhost, "destination": q.name,
                       "destination_type": "queue", "routing_key": q.binding.1, "arguments": {}})
            })
            .collect();
        json!({"exchanges": exchanges, "queues": queues, "bindings": bindings})
    }

    /// The queues, in declaration order.
    pub fn queues(&self) -> &[QueueSpec] {
        &self.queues
    }
}

/// A queue of changes: quorum, one active consumer (order), a delivery limit, dead-lettering.
fn change_queue(config: &AmqpConfig, name: String, routing_key: String) -> QueueSpec {
    QueueSpec {
        name,
        args: vec![
            ("x-queue-type", Arg::Text("quorum".into())),
            ("x-single-active-consumer", Arg::Bool(true)),
            (
                "x-delivery-limit",
                Arg::Int(i64::from(config.delivery_limit)),
            ),
            ("x-dead-letter-exchange", Arg::Text(config.dead_exchange())),
        ],
        binding: (config.exchange.clone(), routing_key),
    }
}

impl QueueSpec {
    fn field_table(&self) -> FieldTable {
        let mut table = FieldTable::default();
        for (key, arg) in &self.args {
            let value = match arg {
                Arg::Text(s) => AMQPValue::LongString(LongString::from(s.as_str())),
                Arg::Bool(b) => AMQPValue::Boolean(*b),
                Arg::Int(i) => AMQPValue::LongInt(i32::try_from(*i).unwrap_or(i32::MAX)),
            };
            table.insert((*key).into(), value);
        }
        table
    }

    fn json_args(&self) -> Json {
        let mut map = Map::new();
        for (key, arg) in &self.args {
            let value = match arg {
                Arg::Text(s) => json!(s),
                Arg::Bool(b) => json!(b),
                Arg::Int(i) => json!(i),
            };
            map.insert((*key).to_string(), value);
        }
        Json::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(upstream: bool) -> Config {
        let tables = if upstream {
            "[upstream.tables.CLIENTES]\npg_table = 'customers'\nkey = ['id']\n"
        } else {
            ""
        };
        Config::parse(&format!(
            "[postgres]\nurl='postgres://x'\n[amqp]\nurl='amqp://x'\nexchange='pax'\n\
             [firebird]\npassword='x'\n[units]\nids='1-2'\ndatabase='h:/u{{id}}.fdb'\n\
             [transforms]\ndir='/tmp'\n{tables}"
        ))
        .unwrap()
    }

    #[test]
    fn a_host_declares_its_units_and_upstream_queues_and_nothing_else() {
        let names = |c: &Config| -> Vec<String> {
            Topology::of_host(c)
                .queues()
                .iter()
                .map(|q| q.name.clone())
                .collect()
        };
        assert_eq!(
            names(&config(false)),
            vec!["pax.dead", "pax.unit.1", "pax.unit.2"]
        );
        assert_eq!(
            names(&config(true)),
            vec![
                "pax.dead",
                "pax.unit.1",
                "pax.upstream.1",
                "pax.unit.2",
                "pax.upstream.2"
            ]
        );
    }

    #[test]
    fn definitions_carry_the_declared_arguments() {
        let defs = Topology::of_host(&config(true)).definitions("/");
        let unit = &defs["queues"][1];
        assert_eq!(unit["name"], "pax.unit.1");
        assert_eq!(unit["arguments"]["x-single-active-consumer"], true);
        assert_eq!(unit["arguments"]["x-delivery-limit"], 20);
        assert_eq!(unit["arguments"]["x-dead-letter-exchange"], "pax.dlx");
        let bindings = defs["bindings"].as_array().unwrap();
        assert!(bindings
            .iter()
            .any(|b| b["routing_key"] == "pax.origin.2.#"));
        assert_eq!(defs["exchanges"][0]["type"], "topic");
    }
}
