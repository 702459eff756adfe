//! Evaluation: scorers for suites (`scorers`) and the statistics of the
//! regression gate (`stats`), used by `switchyard eval`.
pub mod scorers;
pub mod stats;
