//! Prices per model (US dollars per million tokens, input and output) and
//! the cost of a request in nano-dollars.

use super::limits::NANOS_PER_USD;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    /// Model name → price; models not listed cost nothing.
    pub models: HashMap<String, Price>,
}

impl PriceTable {
    pub fn price(&self, model: &str) -> Price {
        self.models.get(model).copied().unwrap_or_default()
    }

    /// Cost in nano-dollars, rounded up so a budget is never undercharged.
    pub fn cost_nanos(&self, model: &str, input_tokens: u64, output_tokens: u64) -> u64 {
        let p = self.price(model);
        let per_token = NANOS_PER_USD / 1e6;
        let nanos = input_tokens as f64 * p.input_per_million * per_token
            + output_tokens as f64 * p.output_per_million * per_token;
        nanos.ceil().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_in_nanodollars() {
        let mut t = PriceTable::default();
        t.models.insert("m".into(), Price { input_per_million: 0.15, output_per_million: 0.6 });
        // 1000 × 0.15 $/M + 500 × 0.6 $/M = 0.00015 + 0.0003 $ = 450 000 n$
        assert_eq!(t.cost_nanos("m", 1000, 500), 450_000);
        assert_eq!(t.cost_nanos("free", 1000, 500), 0);
    }
}
