//! Token and spending budgets of a run, counting requests still in flight.

use std::sync::Mutex;

/// What one request set aside before it was sent.
#[derive(Debug)]
pub struct Reservation {
    tokens: u64,
    cost: f64,
}

#[derive(Debug, Default)]
struct Ledger {
    used_tokens: u64,
    used_cost: f64,
    reserved_tokens: u64,
    reserved_cost: f64,
}

/// The run's limits and what has been spent or promised so far.
#[derive(Debug)]
pub struct Budget {
    max_tokens: Option<u64>,
    max_cost_usd: Option<f64>,
    ledger: Mutex<Ledger>,
}

impl Budget {
    /// A budget; `None` means no limit of that kind.
    pub fn new(max_tokens: Option<u64>, max_cost_usd: Option<f64>) -> Budget {
        Budget {
            max_tokens,
            max_cost_usd,
            ledger: Mutex::new(Ledger::default()),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts what earlier sessions of the run spent (on resume).
    pub fn add_spent(&self, tokens: u64, cost: f64) {
        let mut ledger = self.ledger();
        ledger.used_tokens += tokens;
        ledger.used_cost += cost;
    }

    /// Sets aside the most a request may use, or says which budget it would break.
    pub fn reserve(&self, tokens: u64, cost: f64) -> Result<Reservation, String> {
        let mut ledger = self.ledger();
        if let Some(max) = self.max_tokens
            && ledger.used_tokens + ledger.reserved_tokens + tokens > max
        {
            return Err(format!(
                "token budget reached: {} of {max} tokens used, {} more in flight, next request may need {tokens}",
                ledger.used_tokens, ledger.reserved_tokens
            ));
        }
        if let Some(max) = self.max_cost_usd
            && ledger.used_cost + ledger.reserved_cost + cost > max
        {
            return Err(format!(
                "cost budget reached: ${:.4} of ${max:.4} spent, ${:.4} more in flight",
                ledger.used_cost, ledger.reserved_cost
            ));
        }
        ledger.reserved_tokens += tokens;
        ledger.reserved_cost += cost;
        Ok(Reservation { tokens, cost })
    }

    /// Replaces a reservation with what the request really used.
    pub fn settle(&self, reservation: Reservation, tokens: u64, cost: f64) {
        let mut ledger = self.ledger();
        ledger.reserved_tokens -= reservation.tokens;
        ledger.reserved_cost -= reservation.cost;
        ledger.used_tokens += tokens;
        ledger.used_cost += cost;
    }

    /// Tokens and dollars used so far (settled requests only).
    pub fn used(&self) -> (u64, f64) {
        let ledger = self.ledger();
        (ledger.used_tokens, ledger.used_cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_in_flight_count_against_the_budget() {
        let budget = Budget::new(Some(1000), None);
        let first = budget.reserve(600, 0.0).unwrap();
        assert!(
            budget.reserve(600, 0.0).is_err(),
            "600 in flight + 600 > 1000"
        );
        budget.settle(first, 100, 0.0);
        let second = budget.reserve(600, 0.0).unwrap();
        budget.settle(second, 950, 0.0);
        assert_eq!(budget.used(), (1050, 0.0));
        assert!(budget.reserve(1, 0.0).unwrap_err().contains("token budget"));
    }

    #[test]
    fn cost_budget_is_enforced() {
        let budget = Budget::new(None, Some(0.01));
        let r = budget.reserve(10, 0.008).unwrap();
        assert!(
            budget
                .reserve(10, 0.008)
                .unwrap_err()
                .contains("cost budget")
        );
        budget.settle(r, 10, 0.001);
        assert!(budget.reserve(10, 0.008).is_ok());
    }
}
