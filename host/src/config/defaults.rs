//! Default values of the configuration keys (serde `default = "defaults::..."`).

pub fn pg_pool() -> u32 {
    8
}
pub fn io_timeout_ms() -> u64 {
    10_000
}
pub fn fb_timeout_ms() -> u64 {
    30_000
}
pub fn exchange() -> String {
    "pax".into()
}
pub fn prefetch() -> u16 {
    1_000
}
pub fn delivery_limit() -> u32 {
    20
}
pub fn fb_user() -> String {
    "SYSDBA".into()
}
pub fn fb_charset() -> String {
    "UTF8".into()
}
pub fn all_ops() -> super::OpSet {
    super::OpSet(vec![
        crate::model::Op::Insert,
        crate::model::Op::Update,
        crate::model::Op::Delete,
    ])
}
