//! `[[models]]` and `[llm]` in problem.toml: defaults, and errors that name
//! the file, line and key.

use evolve_core::{ProblemSpec, Provider};

const BASE: &str = "name = \"t\"\ninitial_program = \"i.py\"\n\n[evaluator]\ncommand = [\"true\"]\nobjective = \"s\"\ndirection = \"maximize\"\n";

fn load(extra: &str) -> Result<ProblemSpec, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("problem.toml"), format!("{BASE}{extra}")).unwrap();
    std::fs::write(dir.path().join("i.py"), "x = 1\n").unwrap();
    ProblemSpec::load(dir.path()).map_err(|e| e.to_string())
}

#[test]
fn models_and_llm_tables_parse_with_defaults() {
    let spec = load(
        "\n[[models]]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nweight = 2\n\n[[models]]\nprovider = \"anthropic\"\nmodel = \"claude\"\n\n[llm]\nmax_cost_usd = 1.5\n",
    )
    .unwrap();
    assert_eq!(spec.models.len(), 2);
    assert_eq!(spec.models[0].provider, Provider::OpenAi);
    assert_eq!(spec.models[0].weight, 2.0);
    assert_eq!(spec.models[1].max_concurrency, 4);
    assert_eq!(spec.llm.max_cost_usd, Some(1.5));
    assert_eq!(spec.llm.diff_probability, 0.6);
    assert!(load("").unwrap().models.is_empty());
}

#[test]
fn model_errors_name_line_and_key() {
    let error =
        load("\n[[models]]\nprovider = \"openai\"\nmodel = \"m\"\ntemprature = 0.5\n").unwrap_err();
    assert!(
        error.contains("problem.toml:12:") && error.contains("key `models.temprature`"),
        "{error}"
    );
    let error = load("\n[[models]]\nprovider = \"gpt\"\nmodel = \"m\"\n").unwrap_err();
    assert!(
        error.contains("problem.toml:10:") && error.contains("provider"),
        "{error}"
    );
    let error = load("\n[[models]]\nprovider = \"openai\"\nmodel = \"m\"\n\n[[models]]\nprovider = \"openai\"\nmodel = \"n\"\nweight = -1\n").unwrap_err();
    assert!(error.contains("key `models[1].weight`"), "{error}");
    let error = load("\n[llm]\nmax_cost_usd = 0\n").unwrap_err();
    assert!(error.contains("key `llm.max_cost_usd`"), "{error}");
    let error = load("\n[llm]\nbudget = 3\n").unwrap_err();
    assert!(error.contains("key `llm.budget`"), "{error}");
}
