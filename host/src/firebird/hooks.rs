//! What an apply transaction keeps consistent at a unit besides the rows it writes: the legacy
//! key generators (raised past replicated ids) and the fingerprints of the tables under periodic
//! capture (so ponte's own writes are not captured again).

use super::generator::Generators;
use crate::capture::periodic::PeriodicTargets;

/// The per-unit extras of the apply transaction, built from the config.
#[derive(Debug, Clone, Default)]
pub struct UnitHooks {
    /// `[tables]` entry -> the unit generator that feeds its key.
    pub generators: Generators,
    /// Downstream table -> the periodic unit tables it writes.
    pub periodic: PeriodicTargets,
}

impl UnitHooks {
    /// The hooks `config` asks for.
    pub fn of(config: &crate::config::Config) -> UnitHooks {
        UnitHooks {
            generators: crate::legacy::generators(config),
            periodic: PeriodicTargets::of(config),
        }
    }
}
