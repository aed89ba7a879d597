//! Data-driven reply parsing rules: each file in `tests/replies/` is one rule,
//! holding a parent program, a model reply, and the expected result.
//!
//! Sections start with `=== parent`, `=== reply`, then either
//! `=== program` (the exact expected program) followed by `=== change <kind>`,
//! or `=== error <category>`. `\r` in a reply section stands for a carriage
//! return, so CRLF replies can be written down.

use std::path::Path;

use evolve_core::reply::{ReplyChange, apply_model_reply};
use evolve_core::{SourceFile, diff::MatchKind};

struct Case {
    parent: String,
    reply: String,
    expected_program: Option<String>,
    change: Option<String>,
    error: Option<String>,
}

fn parse_case(text: &str) -> Case {
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(header) = line.strip_prefix("=== ") {
            sections.push((header.trim().to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
        }
    }
    let mut case = Case {
        parent: String::new(),
        reply: String::new(),
        expected_program: None,
        change: None,
        error: None,
    };
    for (header, body) in sections {
        let (name, arg) = header.split_once(' ').unwrap_or((header.as_str(), ""));
        match name {
            "parent" => case.parent = body,
            "reply" => case.reply = body.replace("\\r", "\r"),
            "program" => case.expected_program = Some(body),
            "change" => case.change = Some(arg.to_string()),
            "error" => case.error = Some(arg.to_string()),
            other => panic!("unknown section {other:?}"),
        }
    }
    case
}

fn kind_names(kinds: &[MatchKind]) -> String {
    kinds
        .iter()
        .map(|k| match k {
            MatchKind::Exact => "exact",
            MatchKind::TrailingWhitespace => "whitespace",
            MatchKind::Indentation => "indentation",
            MatchKind::Inserted => "inserted",
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn change_name(change: &ReplyChange) -> String {
    match change {
        ReplyChange::Diff(kinds) => format!("diff:{}", kind_names(kinds)),
        ReplyChange::FencePairs(kinds) => format!("fence_pairs:{}", kind_names(kinds)),
        ReplyChange::Regions => "regions".into(),
        ReplyChange::Definition(name) => format!("definition:{name}"),
        ReplyChange::WholeRegion => "whole_region".into(),
    }
}

fn check(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case = parse_case(&text);
    let result = apply_model_reply(&case.parent, &case.reply);
    match (&case.error, result) {
        (Some(category), Err(error)) if error.category() == category => Ok(()),
        (Some(category), other) => Err(format!("expected error {category}, got {other:?}")),
        (None, Err(error)) => Err(format!("expected a program, got error {error}")),
        (None, Ok(applied)) => {
            let expected = case.expected_program.as_deref().unwrap_or_default();
            if applied.program != expected {
                return Err(format!(
                    "program differs:\n--- got\n{}--- expected\n{expected}",
                    applied.program
                ));
            }
            let frame_kept = SourceFile::parse(&applied.program)
                .map_err(|e| e.to_string())?
                .same_frame(&SourceFile::parse(&case.parent).map_err(|e| e.to_string())?);
            if !frame_kept {
                return Err("text outside the regions changed".into());
            }
            let got = change_name(&applied.change);
            match &case.change {
                Some(want) if *want == got => Ok(()),
                want => Err(format!("expected change {want:?}, got {got}")),
            }
        }
    }
}

#[test]
fn every_reply_rule_holds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replies");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/replies exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 15, "only {} rule files", paths.len());
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| check(p).err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
