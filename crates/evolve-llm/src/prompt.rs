//! Prompts from minijinja templates: built-in defaults, overridable per
//! problem folder (`<problem>/prompts/<name>.j2`), strict about undefined
//! variables, and kept under a size budget.

use std::sync::Arc;

use evolve_core::{ProblemSpec, Program, SourceFile};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::LlmError;

/// The templates, by file name, with their built-in text.
const TEMPLATES: [(&str, &str); 5] = [
    ("system.j2", include_str!("../templates/system.j2")),
    ("context.j2", include_str!("../templates/context.j2")),
    ("diff.j2", include_str!("../templates/diff.j2")),
    ("rewrite.j2", include_str!("../templates/rewrite.j2")),
    ("crossover.j2", include_str!("../templates/crossover.j2")),
];

/// The folder inside a problem folder that may override templates.
pub const PROMPTS_DIR: &str = "prompts";

/// Description kept when nothing else is left to drop.
const MIN_DESCRIPTION_CHARS: usize = 400;

/// Feedback kept per program once inspirations are gone and the prompt is still too long.
const MIN_FEEDBACK_CHARS: usize = 300;

/// What a request asks the model for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// SEARCH/REPLACE edits of the parent.
    Diff,
    /// A full rewrite of the evolvable region.
    Rewrite,
    /// A crossover of the parent and a second program.
    Crossover,
}

impl RequestKind {
    /// The name used in records (`diff`, `rewrite`, `crossover`).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Diff => "diff",
            RequestKind::Rewrite => "rewrite",
            RequestKind::Crossover => "crossover",
        }
    }

    fn template(self) -> &'static str {
        match self {
            RequestKind::Diff => "diff.j2",
            RequestKind::Rewrite => "rewrite.j2",
            RequestKind::Crossover => "crossover.j2",
        }
    }
}

#[derive(Serialize)]
struct MetricView {
    name: String,
    value: f64,
}

#[derive(Serialize)]
struct ProgramView {
    code: String,
    region: String,
    score: f64,
    metrics: Vec<MetricView>,
    feedback: String,
}

/// A worked SEARCH/REPLACE example made from the parent's own code, so that
/// even a model that copies the example produces an edit that applies.
#[derive(Serialize)]
struct Example {
    search: String,
    replace: String,
}

/// Doubles the first number on the first line of `region` that has one.
fn example_edit(region: &str) -> Example {
    for line in region.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || trimmed.starts_with("//") {
            continue;
        }
        let bytes = line.as_bytes();
        let start = (0..bytes.len()).find(|&i| {
            bytes[i].is_ascii_digit()
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        });
        if let Some(start) = start {
            let end = (start..bytes.len())
                .find(|&i| !bytes[i].is_ascii_digit())
                .unwrap_or(bytes.len());
            if let Ok(n) = line[start..end].parse::<u64>() {
                let replace = format!("{}{}{}", &line[..start], n.saturating_mul(2), &line[end..]);
                return Example {
                    search: line.to_string(),
                    replace,
                };
            }
        }
    }
    let first = region.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    Example {
        search: first.to_string(),
        replace: first.to_string(),
    }
}

#[derive(Serialize)]
struct PromptContext<'a> {
    description: &'a str,
    objective: &'a str,
    direction: &'a str,
    language: &'a str,
    parent: ProgramView,
    other: Option<ProgramView>,
    inspirations: Vec<ProgramView>,
    previous_failure: String,
    example: Example,
}

/// What a prompt is made from.
pub struct PromptInput<'a> {
    /// The kind of request.
    pub kind: RequestKind,
    /// The program to change.
    pub parent: &'a Program,
    /// The second parent of a crossover.
    pub other: Option<&'a Program>,
    /// Programs shown for ideas, best first; dropped from the end to fit.
    pub inspirations: &'a [Arc<Program>],
    /// Why the last reply for this parent was unusable.
    pub previous_failure: Option<&'a str>,
}

/// The prompt builder of a run.
pub struct Prompts {
    env: Environment<'static>,
    description: String,
    objective: String,
    direction: &'static str,
    language: String,
    max_chars: usize,
    feedback_chars: usize,
}

fn language_of(extension: &str) -> String {
    match extension {
        "py" => "python",
        "rs" => "rust",
        "js" | "mjs" => "javascript",
        "ts" => "typescript",
        "c" | "h" => "c",
        "cc" | "cpp" | "hpp" => "cpp",
        "go" => "go",
        "jl" => "julia",
        "java" => "java",
        other => other,
    }
    .to_string()
}

fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[... cut, {} more characters]",
        &text[..end],
        text.len() - end
    )
}

impl Prompts {
    /// Loads the templates (overrides from `<problem>/prompts/` win) and
    /// checks that each renders, so a broken template fails before the run.
    pub fn load(spec: &ProblemSpec) -> Result<Prompts, LlmError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        let dir = spec.dir.join(PROMPTS_DIR);
        let mut sources = Vec::new();
        for (name, builtin) in TEMPLATES {
            let path = dir.join(name);
            let (text, origin) = if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|e| LlmError::Template {
                    origin: path.display().to_string(),
                    message: e.to_string(),
                })?;
                (text, path.display().to_string())
            } else {
                (builtin.to_string(), format!("built-in {name}"))
            };
            env.add_template_owned(name, text)
                .map_err(|e| LlmError::Template {
                    origin: origin.clone(),
                    message: template_error(&e),
                })?;
            sources.push((name, origin));
        }
        let prompts = Prompts {
            env,
            description: spec.description.trim().to_string(),
            objective: spec.evaluator.objective.clone(),
            direction: spec.evaluator.direction.as_str(),
            language: language_of(spec.program_extension()),
            max_chars: spec.llm.max_prompt_chars,
            feedback_chars: spec.llm.feedback_chars,
        };
        let sample = Program {
            id: 0,
            parent: None,
            island: 0,
            generation: 0,
            code: "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n".into(),
            score: 1.0,
            metrics: [("m".to_string(), 1.0)].into(),
            artifacts: [("a".to_string(), "b".to_string())].into(),
        };
        let inspirations = [Arc::new(sample.clone())];
        for kind in [
            RequestKind::Diff,
            RequestKind::Rewrite,
            RequestKind::Crossover,
        ] {
            let input = PromptInput {
                kind,
                parent: &sample,
                other: Some(&sample),
                inspirations: &inspirations,
                previous_failure: Some("sample failure"),
            };
            if let Err(error) =
                prompts.render_once(&input, usize::MAX, prompts.feedback_chars, usize::MAX)
            {
                let origin = sources
                    .iter()
                    .find(|(name, _)| *name == kind.template())
                    .map_or_else(String::new, |(_, origin)| origin.clone());
                return Err(LlmError::Template {
                    origin,
                    message: error,
                });
            }
        }
        Ok(prompts)
    }

    fn view(&self, program: &Program, feedback_chars: usize) -> ProgramView {
        let region = SourceFile::parse(&program.code)
            .map(|f| f.regions().concat())
            .unwrap_or_else(|_| program.code.clone());
        let feedback: String = program
            .artifacts
            .iter()
            .map(|(name, text)| format!("{name}:\n{}\n", text.trim_end()))
            .collect();
        ProgramView {
            code: program.code.trim_end().to_string(),
            region: region.trim_end().to_string(),
            score: program.score,
            metrics: program
                .metrics
                .iter()
                .map(|(name, value)| MetricView {
                    name: name.clone(),
                    value: *value,
                })
                .collect(),
            feedback: cut(feedback.trim_end(), feedback_chars),
        }
    }

    fn render_once(
        &self,
        input: &PromptInput<'_>,
        inspirations: usize,
        feedback_chars: usize,
        description_chars: usize,
    ) -> Result<(String, String), String> {
        let description = cut(&self.description, description_chars);
        let parent = self.view(input.parent, feedback_chars);
        let example = example_edit(&parent.region);
        let context = PromptContext {
            example,
            description: &description,
            objective: &self.objective,
            direction: self.direction,
            language: &self.language,
            parent,
            other: input.other.map(|o| self.view(o, feedback_chars)),
            inspirations: input
                .inspirations
                .iter()
                .take(inspirations)
                .map(|p| self.view(p, 0))
                .collect(),
            previous_failure: input.previous_failure.unwrap_or_default().to_string(),
        };
        let value = Value::from(minijinja::value::Serde(&context));
        let render = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&value))
                .map_err(|e| template_error(&e))
        };
        Ok((render("system.j2")?, render(input.kind.template())?))
    }

    /// Renders (system, user) for `input`, dropping inspirations and then
    /// trimming feedback until the prompt fits the size budget.
    pub fn render(&self, input: &PromptInput<'_>) -> Result<(String, String), LlmError> {
        let fail = |message| LlmError::Template {
            origin: input.kind.template().to_string(),
            message,
        };
        let mut shown = input.inspirations.len();
        let mut feedback = self.feedback_chars;
        let mut description = self.description.len();
        loop {
            let (system, user) = self
                .render_once(input, shown, feedback, description)
                .map_err(fail)?;
            let size = system.len() + user.len();
            if size <= self.max_chars {
                return Ok((system, user));
            }
            if shown > 0 {
                shown -= 1;
            } else if feedback > MIN_FEEDBACK_CHARS {
                feedback = MIN_FEEDBACK_CHARS;
            } else if description > MIN_DESCRIPTION_CHARS {
                let excess = size - self.max_chars;
                description = description
                    .saturating_sub(excess + 64)
                    .max(MIN_DESCRIPTION_CHARS);
            } else {
                // Still too long: the program itself is big; send it anyway
                // rather than hiding the code the model must edit.
                return Ok((system, user));
            }
        }
    }
}

/// A template error with its line, when minijinja knows it.
fn template_error(error: &minijinja::Error) -> String {
    match error.line() {
        Some(line) => format!("line {line}: {error}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_in(dir: &std::path::Path, extra: &str) -> ProblemSpec {
        std::fs::write(
            dir.join("problem.toml"),
            format!("name = \"t\"\ninitial_program = \"i.py\"\ndescription = \"Make x big.\"\n[evaluator]\ncommand = [\"true\"]\nobjective = \"score\"\ndirection = \"maximize\"\n{extra}"),
        )
        .unwrap();
        std::fs::write(
            dir.join("i.py"),
            "import os\n# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n",
        )
        .unwrap();
        ProblemSpec::load(dir).unwrap()
    }

    fn program(id: i64, code: &str, score: f64) -> Program {
        Program {
            id,
            parent: None,
            island: 0,
            generation: 0,
            code: code.into(),
            score,
            metrics: [("score".to_string(), score)].into(),
            artifacts: [("log".to_string(), "x".repeat(5000))].into(),
        }
    }

    #[test]
    fn prompts_carry_everything_and_fit_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_in(dir.path(), "[llm]\nmax_prompt_chars = 3000\n");
        let prompts = Prompts::load(&spec).unwrap();
        let parent = program(
            1,
            "import os\n# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n",
            1.0,
        );
        let big =
            "# EVOLVE-BLOCK-START\n".to_string() + &"y = 2\n".repeat(200) + "# EVOLVE-BLOCK-END\n";
        let inspirations = vec![
            Arc::new(program(2, &big, 0.5)),
            Arc::new(program(3, &big, 0.4)),
        ];
        let (system, user) = prompts
            .render(&PromptInput {
                kind: RequestKind::Diff,
                parent: &parent,
                other: None,
                inspirations: &inspirations,
                previous_failure: Some("block 1: SEARCH text not found"),
            })
            .unwrap();
        assert!(system.contains("python"));
        for needle in [
            "Make x big.",
            "x = 1",
            "score = 1",
            "SEARCH text not found",
            "<<<<<<< SEARCH",
            "log:",
        ] {
            assert!(user.contains(needle), "missing {needle:?} in\n{user}");
        }
        assert!(system.len() + user.len() <= 3000, "{}", user.len());
        assert!(
            !user.contains("y = 2"),
            "inspirations should be dropped first"
        );
    }

    #[test]
    fn overrides_are_used_and_undefined_variables_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_in(dir.path(), "");
        std::fs::create_dir(dir.path().join(PROMPTS_DIR)).unwrap();
        let rewrite = dir.path().join(PROMPTS_DIR).join("rewrite.j2");
        std::fs::write(&rewrite, "Rewrite for {{ objective }} please.\n").unwrap();
        let prompts = Prompts::load(&spec).unwrap();
        let parent = program(1, "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n", 1.0);
        let (_, user) = prompts
            .render(&PromptInput {
                kind: RequestKind::Rewrite,
                parent: &parent,
                other: None,
                inspirations: &[],
                previous_failure: None,
            })
            .unwrap();
        assert_eq!(user, "Rewrite for score please.\n");

        std::fs::write(&rewrite, "Rewrite {{ objectiv }}\n").unwrap();
        let error = Prompts::load(&spec)
            .err()
            .expect("undefined variable is refused")
            .to_string();
        assert!(
            error.contains("rewrite.j2") && error.contains("line 1"),
            "{error}"
        );
    }
}
