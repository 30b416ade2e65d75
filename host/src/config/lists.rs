//! List values of the configuration: unit ids (`1-50`, `[1, 3]`) and operation sets.

use serde::{Deserialize, Deserializer};

use crate::model::Op;

/// A parsed list of unit ids (sorted, unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdList(pub Vec<i32>);

impl IdList {
    /// Parses `"1-3,7"`.
    pub fn parse(text: &str) -> Result<IdList, String> {
        let mut ids = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (lo.trim(), hi.trim()),
                None => (part, part),
            };
            let lo: i32 = lo
                .parse()
                .map_err(|_| format!("`{part}` is not an id or a range"))?;
            let hi: i32 = hi
                .parse()
                .map_err(|_| format!("`{part}` is not an id or a range"))?;
            if lo < 1 || hi < lo || hi - lo > 10_000 {
                return Err(format!("range `{part}` must be ascending positive ids"));
            }
            ids.extend(lo..=hi);
        }
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Err("no unit ids given".into());
        }
        Ok(IdList(ids))
    }
}

impl<'de> Deserialize<'de> for IdList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        IdList::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The set of operations allowed for a table, written `"IUD"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSet(pub Vec<Op>);

impl OpSet {
    /// Whether `op` is allowed.
    pub fn allows(&self, op: Op) -> bool {
        self.0.contains(&op)
    }
}

impl<'de> Deserialize<'de> for OpSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut ops = Vec::new();
        for c in text.chars() {
            let op = Op::from_code(&c.to_string()).ok_or_else(|| {
                serde::de::Error::custom(format!("operation `{c}` is not one of I, U, D"))
            })?;
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
        Ok(OpSet(ops))
    }
}
