//! SEARCH/REPLACE edits applied to the evolvable regions of a program.
//!
//! ```text
//! <<<<<<< SEARCH
//! old lines
//! =======
//! new lines
//! >>>>>>> REPLACE
//! ```
//!
//! Edits only ever touch regions, so the frame of a program cannot change.
//! Matching tries, in order: the exact text, the lines ignoring trailing
//! whitespace (and CRLF), then the lines ignoring indentation (the
//! replacement is re-indented to fit). An empty SEARCH inserts at the end of
//! the last region, inside its END marker. A `=======` line that belongs to
//! the code is allowed: every separator candidate is tried, and the longest
//! SEARCH that matches wins.

use std::fmt;

use thiserror::Error;

use crate::block::{BlockError, SourceFile};

/// How one edit found its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// The SEARCH text appeared verbatim.
    Exact,
    /// The lines matched once trailing whitespace was ignored.
    TrailingWhitespace,
    /// The lines matched once indentation was ignored; REPLACE was re-indented.
    Indentation,
    /// An empty SEARCH: REPLACE was appended to the last region.
    Inserted,
}

impl fmt::Display for MatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchKind::Exact => "exact",
            MatchKind::TrailingWhitespace => "whitespace-tolerant",
            MatchKind::Indentation => "indentation-tolerant",
            MatchKind::Inserted => "inserted",
        })
    }
}

/// An edit reply that could not be applied; the whole reply is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DiffError {
    /// The reply held no SEARCH/REPLACE block.
    #[error("no SEARCH/REPLACE block found")]
    NoBlocks,
    /// A block was opened and never closed.
    #[error(
        "block {block} starting at reply line {line} has no `>>>>>>> REPLACE` end or no `=======` separator"
    )]
    Malformed {
        /// 1-based index of the block.
        block: usize,
        /// 1-based line in the reply.
        line: usize,
    },
    /// A SEARCH text matched nothing inside the evolvable regions.
    #[error(
        "block {block}: SEARCH text not found in the evolvable regions (first line: {first_line:?})"
    )]
    NoMatch {
        /// 1-based index of the block.
        block: usize,
        /// The first non-blank SEARCH line, to show what was sought.
        first_line: String,
    },
    /// The edit left the region structure broken.
    #[error(transparent)]
    Block(#[from] BlockError),
}

/// A parsed but not yet applied block: its body lines and separator choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditBlock {
    body: Vec<String>,
    separators: Vec<usize>,
}

impl EditBlock {
    /// The (search, replace) splits this block allows, longest SEARCH first:
    /// the most specific reading that matches the program wins.
    fn splits(&self) -> impl Iterator<Item = (&[String], &[String])> {
        self.separators
            .iter()
            .rev()
            .map(|&sep| (&self.body[..sep], &self.body[sep + 1..]))
    }
}

/// The program after a successful edit, with how each block matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedDiff {
    /// The whole new program text.
    pub program: String,
    /// How each block matched, in reply order.
    pub matches: Vec<MatchKind>,
}

fn is_marker(line: &str, ch: char, word: &str) -> bool {
    let line = line.trim();
    let run = line.chars().take_while(|&c| c == ch).count();
    (5..=9).contains(&run) && line[run..].trim() == word
}

/// Extracts every SEARCH/REPLACE block from a model reply.
pub fn parse_edits(reply: &str) -> Result<Vec<EditBlock>, DiffError> {
    let lines: Vec<&str> = reply.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !is_marker(lines[i], '<', "SEARCH") {
            i += 1;
            continue;
        }
        let start = i;
        let mut body = Vec::new();
        let mut separators = Vec::new();
        i += 1;
        let mut closed = false;
        while i < lines.len() {
            let line = lines[i];
            if is_marker(line, '>', "REPLACE") {
                closed = true;
                break;
            }
            if is_marker(line, '=', "") {
                separators.push(body.len());
            }
            body.push(line.trim_end_matches('\r').to_string());
            i += 1;
        }
        if !closed || separators.is_empty() {
            return Err(DiffError::Malformed {
                block: blocks.len() + 1,
                line: start + 1,
            });
        }
        blocks.push(EditBlock { body, separators });
        i += 1;
    }
    if blocks.is_empty() {
        return Err(DiffError::NoBlocks);
    }
    Ok(blocks)
}

/// Parses `reply` and applies its edits to the regions of `program`.
pub fn apply_reply(program: &str, reply: &str) -> Result<AppliedDiff, DiffError> {
    let blocks = parse_edits(reply)?;
    apply_edits(program, &blocks)
}

/// Applies parsed edits in order; fails as a whole if any block matches nothing.
pub fn apply_edits(program: &str, blocks: &[EditBlock]) -> Result<AppliedDiff, DiffError> {
    let file = SourceFile::parse(program)?;
    let mut regions: Vec<String> = file.regions().to_vec();
    let mut matches = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        let found = block.splits().find_map(|(search, replace)| {
            let mut trial = regions.clone();
            apply_one(&mut trial, search, replace).map(|kind| (kind, trial))
        });
        match found {
            Some((kind, applied)) => {
                regions = applied;
                matches.push(kind);
            }
            None => {
                let first_line = block
                    .splits()
                    .last()
                    .and_then(|(search, _)| search.iter().find(|l| !l.trim().is_empty()).cloned())
                    .unwrap_or_default();
                return Err(DiffError::NoMatch {
                    block: index + 1,
                    first_line,
                });
            }
        }
    }
    Ok(AppliedDiff {
        program: file.with_regions(&regions)?,
        matches,
    })
}

fn trim_blank_edges(lines: &[String]) -> &[String] {
    let start = lines
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(start, |e| e + 1);
    &lines[start..end]
}

fn apply_one(regions: &mut [String], search: &[String], replace: &[String]) -> Option<MatchKind> {
    let core = trim_blank_edges(search);
    if core.is_empty() {
        let last = regions.last_mut()?;
        let eol = line_ending(last);
        if !last.is_empty() && !last.ends_with('\n') {
            last.push_str(eol);
        }
        for line in replace {
            last.push_str(line);
            last.push_str(eol);
        }
        return Some(MatchKind::Inserted);
    }
    let exact = join_lines(search, "\n");
    for region in regions.iter_mut() {
        if let Some(at) = region.find(&exact) {
            let replacement = join_lines(replace, "\n");
            region.replace_range(at..at + exact.len(), &replacement);
            return Some(MatchKind::Exact);
        }
    }
    for (kind, strict_indent) in [
        (MatchKind::TrailingWhitespace, true),
        (MatchKind::Indentation, false),
    ] {
        for region in regions.iter_mut() {
            if let Some(new_region) = replace_lines(region, core, replace, strict_indent) {
                *region = new_region;
                return Some(kind);
            }
        }
    }
    None
}

fn join_lines(lines: &[String], eol: &str) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push_str(eol);
    }
    out
}

fn line_ending(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

fn indent_of(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// Line-wise match of `search` inside `region`, tolerant of trailing
/// whitespace and, unless `strict_indent`, of indentation.
fn replace_lines(
    region: &str,
    search: &[String],
    replace: &[String],
    strict_indent: bool,
) -> Option<String> {
    let lines: Vec<&str> = region.split_inclusive('\n').collect();
    let same = |a: &str, b: &str| {
        if strict_indent {
            a.trim_end() == b.trim_end()
        } else {
            a.trim() == b.trim()
        }
    };
    let start = (0..lines.len().checked_sub(search.len())? + 1).find(|&s| {
        search
            .iter()
            .zip(&lines[s..])
            .all(|(want, have)| same(have, want))
    })?;
    let eol = line_ending(region);
    let have_indent = indent_of(lines[start]);
    let want_indent = indent_of(&search[0]);
    let mut out: String = lines[..start].concat();
    for line in replace {
        if strict_indent || line.trim().is_empty() {
            out.push_str(line.trim_end());
        } else {
            let body = line
                .strip_prefix(want_indent)
                .unwrap_or_else(|| line.trim_start());
            out.push_str(have_indent);
            out.push_str(body.trim_end());
        }
        out.push_str(eol);
    }
    out.push_str(&lines[start + search.len()..].concat());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAM: &str = "def fixed():\n    return 0\n# EVOLVE-BLOCK-START\ndef f(x):\n    y = x + 1\n    return y\n# EVOLVE-BLOCK-END\nprint(f(1))\n";

    fn edit(search: &str, replace: &str) -> String {
        format!("<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n")
    }

    #[test]
    fn exact_match_replaces_inside_the_region() {
        let out = apply_reply(PROGRAM, &edit("    y = x + 1\n", "    y = x * 2\n")).unwrap();
        assert_eq!(out.matches, [MatchKind::Exact]);
        assert!(out.program.contains("    y = x * 2\n"));
        assert!(
            SourceFile::parse(&out.program)
                .unwrap()
                .same_frame(&SourceFile::parse(PROGRAM).unwrap())
        );
    }

    #[test]
    fn text_outside_regions_is_never_matched() {
        let err = apply_reply(PROGRAM, &edit("    return 0\n", "    return 1\n")).unwrap_err();
        assert!(
            matches!(err, DiffError::NoMatch { block: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn trailing_whitespace_and_crlf_are_tolerated() {
        let reply =
            "<<<<<<< SEARCH\r\n    y = x + 1   \r\n=======\r\n    y = x - 1\r\n>>>>>>> REPLACE\r\n";
        let out = apply_reply(PROGRAM, reply).unwrap();
        assert_eq!(out.matches, [MatchKind::TrailingWhitespace]);
        assert!(out.program.contains("    y = x - 1\n"));
    }

    #[test]
    fn indentation_is_tolerated_and_replacement_reindented() {
        let out = apply_reply(
            PROGRAM,
            &edit("  y = x + 1\n  return y\n", "  z = x\n  return z\n"),
        )
        .unwrap();
        assert_eq!(out.matches, [MatchKind::Indentation]);
        assert!(
            out.program
                .contains("def f(x):\n    z = x\n    return z\n# EVOLVE-BLOCK-END"),
            "{}",
            out.program
        );
    }

    #[test]
    fn empty_search_inserts_before_the_end_marker() {
        let out = apply_reply(PROGRAM, &edit("", "def g():\n    pass\n")).unwrap();
        assert_eq!(out.matches, [MatchKind::Inserted]);
        assert!(
            out.program
                .contains("    return y\ndef g():\n    pass\n# EVOLVE-BLOCK-END\nprint(f(1))\n"),
            "{}",
            out.program
        );
    }

    #[test]
    fn a_separator_line_inside_code_does_not_break_parsing() {
        let program =
            "# EVOLVE-BLOCK-START\nbanner = '''\n=======\n'''\nx = 1\n# EVOLVE-BLOCK-END\n";
        let reply = edit("banner = '''\n=======\n'''\n", "banner = '---'\n");
        let out = apply_reply(program, &reply).unwrap();
        assert_eq!(
            out.program,
            "# EVOLVE-BLOCK-START\nbanner = '---'\nx = 1\n# EVOLVE-BLOCK-END\n"
        );
    }

    #[test]
    fn one_failing_block_rejects_the_whole_reply() {
        let reply = edit("    y = x + 1\n", "    y = 0\n") + &edit("nothing like this\n", "x\n");
        assert_eq!(
            apply_reply(PROGRAM, &reply),
            Err(DiffError::NoMatch {
                block: 2,
                first_line: "nothing like this".into()
            })
        );
    }

    #[test]
    fn malformed_and_missing_blocks_are_reported() {
        assert_eq!(apply_reply(PROGRAM, "just prose"), Err(DiffError::NoBlocks));
        assert_eq!(
            apply_reply(PROGRAM, "<<<<<<< SEARCH\nx\n=======\ny\n"),
            Err(DiffError::Malformed { block: 1, line: 1 })
        );
    }
}
