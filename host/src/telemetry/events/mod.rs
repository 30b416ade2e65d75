//! The observable events, each in one place: the log line, the metric and the board note
//! together, with outcome labels from closed sets. Every line about a change carries its
//! correlation id.

mod delivery;
mod relay;

pub use delivery::ChangeOutcome;
pub use relay::HandBack;
