//! Evaluation: scorers for suites and live samples (`scorers`, and the
//! LLM judge, `judge`), the
//! statistics of the regression gate (`stats`), used by `switchyard eval`,
//! and sampled evaluation of live traffic (`live`).
pub mod judge;
pub mod live;
pub mod scorers;
pub mod stats;
