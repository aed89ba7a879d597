//! The `model_calls` table: every request to a language model, its reply and
//! what became of it. Kept apart from the programs table: failed proposals
//! never pollute the population.

use std::collections::BTreeMap;

use evolve_core::ModelCall;
use rusqlite::params;

use crate::store::{Record, Store, StoreError, insert_row};
use evolve_core::ProgramId;

/// Schema step 3 (see `MIGRATIONS` in store.rs).
pub(crate) const MODEL_CALLS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS model_calls (
    id            INTEGER PRIMARY KEY,
    iteration     INTEGER NOT NULL,
    model         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    outcome       TEXT NOT NULL,
    detail        TEXT NOT NULL,
    http_status   INTEGER,
    finish_reason TEXT,
    prompt        TEXT NOT NULL,
    reply         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    latency_ms    INTEGER NOT NULL,
    seed          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS model_calls_iteration ON model_calls(iteration);
";

/// Totals over a run's model calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelCallTotals {
    /// Attempts made.
    pub calls: u64,
    /// Attempts by outcome category.
    pub by_outcome: BTreeMap<String, u64>,
    /// Input plus output tokens.
    pub tokens: u64,
    /// Spent, in USD.
    pub cost_usd: f64,
}

impl Store {
    /// Appends model calls in one transaction.
    pub fn insert_model_calls(&self, calls: &[ModelCall]) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        self.sql(|c| {
            let tx = c.unchecked_transaction()?;
            insert_calls(&tx, calls)?;
            tx.commit()
        })
    }

    /// Appends a candidate and the model calls made since the last commit in
    /// one transaction, so a model-driven candidate costs one commit, not two.
    pub fn insert_with_calls(
        &self,
        record: &Record,
        calls: &[ModelCall],
    ) -> Result<ProgramId, StoreError> {
        self.sql(|c| {
            let tx = c.unchecked_transaction()?;
            insert_calls(&tx, calls)?;
            let id = insert_row(&tx, record)?;
            tx.commit()?;
            Ok(id)
        })
    }

    /// Every model call of the run, in the order they were recorded.
    pub fn model_calls(&self) -> Result<Vec<ModelCall>, StoreError> {
        self.sql(|c| {
            let mut query = c.prepare(
                "SELECT iteration, model, kind, attempt, outcome, detail, http_status,
                 finish_reason, prompt, reply, input_tokens, output_tokens, cost_usd,
                 latency_ms, seed FROM model_calls ORDER BY id",
            )?;
            let rows = query.query_map([], |row| {
                Ok(ModelCall {
                    iteration: row.get::<_, i64>(0)? as u64,
                    model: row.get(1)?,
                    kind: row.get(2)?,
                    attempt: row.get(3)?,
                    outcome: row.get(4)?,
                    detail: row.get(5)?,
                    http_status: row.get(6)?,
                    finish_reason: row.get(7)?,
                    prompt: row.get(8)?,
                    reply: row.get(9)?,
                    input_tokens: row.get::<_, i64>(10)? as u64,
                    output_tokens: row.get::<_, i64>(11)? as u64,
                    cost_usd: row.get(12)?,
                    latency_ms: row.get::<_, i64>(13)? as u64,
                    seed: row.get::<_, i64>(14)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    /// Totals over the run's model calls (all zero for a run without models).
    pub fn model_call_totals(&self) -> Result<ModelCallTotals, StoreError> {
        self.sql(|c| {
            let mut totals = ModelCallTotals::default();
            let mut query = c.prepare(
                "SELECT outcome, count(*), sum(input_tokens + output_tokens), sum(cost_usd)
                 FROM model_calls GROUP BY outcome",
            )?;
            let rows = query.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, f64>(3)?,
                ))
            })?;
            for row in rows {
                let (outcome, count, tokens, cost) = row?;
                totals.calls += count as u64;
                totals.tokens += tokens as u64;
                totals.cost_usd += cost;
                totals.by_outcome.insert(outcome, count as u64);
            }
            Ok(totals)
        })
    }
}

fn insert_calls(c: &rusqlite::Connection, calls: &[ModelCall]) -> rusqlite::Result<()> {
    let mut insert = c.prepare_cached(
        "INSERT INTO model_calls (iteration, model, kind, attempt, outcome, detail,
         http_status, finish_reason, prompt, reply, input_tokens, output_tokens,
         cost_usd, latency_ms, seed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    for call in calls {
        insert.execute(params![
            call.iteration as i64,
            call.model,
            call.kind,
            call.attempt,
            call.outcome,
            call.detail,
            call.http_status,
            call.finish_reason,
            call.prompt,
            call.reply,
            call.input_tokens as i64,
            call.output_tokens as i64,
            call.cost_usd,
            call.latency_ms as i64,
            // SQLite integers are signed; the bits are kept.
            call.seed as i64,
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip_and_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let spec_dir = dir.path().join("p");
        std::fs::create_dir(&spec_dir).unwrap();
        std::fs::write(spec_dir.join("problem.toml"), "name = \"t\"\ninitial_program = \"i.py\"\n[evaluator]\ncommand = [\"true\"]\nobjective = \"s\"\ndirection = \"maximize\"\n").unwrap();
        std::fs::write(spec_dir.join("i.py"), "x = 1\n").unwrap();
        let spec = evolve_core::ProblemSpec::load(&spec_dir).unwrap();
        let store = Store::create(
            &dir.path().join("evolve.db"),
            &crate::RunMeta {
                spec,
                target_iterations: 1,
            },
        )
        .unwrap();
        assert_eq!(
            store.model_call_totals().unwrap(),
            ModelCallTotals::default()
        );
        let call = ModelCall {
            iteration: 3,
            model: "openai:m".into(),
            kind: "diff".into(),
            attempt: 1,
            outcome: "applied".into(),
            reply: "r".into(),
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: 0.5,
            seed: u64::MAX,
            ..ModelCall::default()
        };
        let failed = ModelCall {
            outcome: "http_429".into(),
            http_status: Some(429),
            ..call.clone()
        };
        store
            .insert_model_calls(&[failed.clone(), call.clone()])
            .unwrap();
        assert_eq!(store.model_calls().unwrap(), vec![failed, call]);
        let totals = store.model_call_totals().unwrap();
        assert_eq!(totals.calls, 2);
        assert_eq!(totals.tokens, 30);
        assert_eq!(totals.by_outcome.get("http_429"), Some(&1));

        let record = Record {
            iteration: 0,
            parent: None,
            island: 0,
            generation: 0,
            status: crate::Status::Scored,
            score: Some(2.0),
            code: "x = 2\n".into(),
            metrics: Default::default(),
            artifacts: Default::default(),
            failure_kind: None,
            failure_detail: None,
            mutation: "initial".into(),
            source: "initial".into(),
            eval_ms: 1,
            propose_ms: 0,
        };
        let later = ModelCall {
            iteration: 4,
            ..ModelCall::default()
        };
        let id = store
            .insert_with_calls(&record, std::slice::from_ref(&later))
            .unwrap();
        let best = store
            .best(evolve_core::Direction::Maximize)
            .unwrap()
            .unwrap();
        assert_eq!((best.id, best.code.as_str()), (id, "x = 2\n"));
        assert_eq!(store.model_calls().unwrap().last(), Some(&later));
        assert_eq!(store.model_call_totals().unwrap().calls, 3);
    }
}
