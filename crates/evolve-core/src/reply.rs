//! Turning a model's reply into a new program, whatever shape the reply has.
//!
//! Models asked for SEARCH/REPLACE blocks often answer with something else,
//! small local models especially. The rules, in order:
//!
//! 1. A reply holding SEARCH/REPLACE blocks is applied as a diff
//!    ([`crate::diff`]); a block that matches nothing fails the whole reply.
//! 2. A reply whose fences come in pairs ("replace ```old``` with ```new```",
//!    a habit of small models) is applied like SEARCH/REPLACE blocks when
//!    every old part matches.
//! 3. Otherwise the largest fenced code block is used. If it holds
//!    EVOLVE-BLOCK markers, its regions replace the program's regions.
//! 4. Top-level chunks of the fence that repeat the fixed frame (imports,
//!    helper functions defined outside the regions) are dropped, so a reply
//!    with the whole program works too.
//! 5. If what is left is one definition whose name is defined in a region,
//!    only that definition is replaced; otherwise a single-region program has
//!    its whole region replaced, unless the fence lacks a definition the
//!    region has (a fragment, refused).
//!
//! Text outside the regions never changes, and a result identical to the
//! parent is reported as no change rather than evaluated again.

use std::fmt;

use thiserror::Error;

use crate::block::{BlockError, END_MARKER, START_MARKER, SourceFile};
use crate::diff::{self, DiffError, MatchKind};

/// How a usable reply was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyChange {
    /// SEARCH/REPLACE blocks, with how each one matched.
    Diff(Vec<MatchKind>),
    /// A fenced program with markers: its regions were taken.
    Regions,
    /// A fenced definition replaced the one of the same name.
    Definition(String),
    /// A fenced block replaced the single region as a whole.
    WholeRegion,
    /// Pairs of fences (old, new) were applied like SEARCH/REPLACE blocks.
    FencePairs(Vec<MatchKind>),
}

impl fmt::Display for ReplyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyChange::Diff(kinds) => {
                let kinds: Vec<String> = kinds.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "diff: {} block(s) applied ({})",
                    kinds.len(),
                    kinds.join(", ")
                )
            }
            ReplyChange::Regions => f.write_str("fenced program: regions replaced"),
            ReplyChange::Definition(name) => write!(f, "fenced definition `{name}` replaced"),
            ReplyChange::WholeRegion => f.write_str("fenced code: whole region replaced"),
            ReplyChange::FencePairs(kinds) => {
                write!(f, "{} fenced old/new pair(s) applied", kinds.len())
            }
        }
    }
}

/// A reply turned into a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedReply {
    /// The whole new program.
    pub program: String,
    /// What was done to get it.
    pub change: ReplyChange,
}

/// Why a reply could not be used; the message is shown to the model next time.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    /// The reply was empty or blank.
    #[error("the reply was empty")]
    Empty,
    /// Neither SEARCH/REPLACE blocks nor a fenced code block.
    #[error("the reply held no SEARCH/REPLACE block and no fenced code block")]
    NoCode,
    /// The SEARCH/REPLACE blocks could not be applied.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// Fenced code that cannot be placed in a program with several regions.
    #[error(
        "the fenced code could not be placed: the program has {regions} EVOLVE-BLOCK regions; use SEARCH/REPLACE blocks or include the markers"
    )]
    Ambiguous {
        /// The program's region count.
        regions: usize,
    },
    /// The fenced program's markers are broken or differ in number.
    #[error("the fenced program's EVOLVE-BLOCK markers do not fit: {0}")]
    Markers(BlockError),
    /// Fenced code too partial to be the whole region.
    #[error(
        "the fenced code is only a fragment: it does not define {}; reply with SEARCH/REPLACE blocks or with the complete code between the markers",
        missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
    )]
    Fragment {
        /// Definitions of the region the fence lacks.
        missing: Vec<String>,
    },
    /// Only code outside the EVOLVE-BLOCK regions was changed.
    #[error(
        "the reply changed only code outside the EVOLVE-BLOCK markers, which never changes; change the code between the markers"
    )]
    OutsideRegions,
    /// The result is the parent itself.
    #[error("the reply changes nothing in the program")]
    NoChange,
}

impl ReplyError {
    /// A short category name for counting (`no_code`, `no_match`, ...).
    pub fn category(&self) -> &'static str {
        match self {
            ReplyError::Empty => "empty_reply",
            ReplyError::NoCode => "no_code",
            ReplyError::Diff(DiffError::NoMatch { .. }) => "no_match",
            ReplyError::Diff(_) => "malformed_diff",
            ReplyError::Ambiguous { .. } | ReplyError::Markers(_) => "misplaced_code",
            ReplyError::Fragment { .. } => "fragment",
            ReplyError::OutsideRegions => "outside_regions",
            ReplyError::NoChange => "no_change",
        }
    }
}

/// Applies any kind of model reply to `program` (see the module rules).
pub fn apply_model_reply(program: &str, reply: &str) -> Result<AppliedReply, ReplyError> {
    if reply.trim().is_empty() {
        return Err(ReplyError::Empty);
    }
    let applied = match diff::apply_reply(program, reply) {
        Ok(applied) => AppliedReply {
            program: applied.program,
            change: ReplyChange::Diff(applied.matches),
        },
        Err(DiffError::NoBlocks) => match apply_fence_pairs(program, reply) {
            Some(applied) => applied,
            None => apply_fenced(program, reply)?,
        },
        Err(error) => return Err(error.into()),
    };
    if applied.program == program {
        return Err(ReplyError::NoChange);
    }
    Ok(applied)
}

/// The fenced code blocks of `reply`, without their fence lines (CRLF
/// normalised). An unclosed last fence (a reply cut off by the token limit)
/// still counts.
pub fn fences(reply: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in reply.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(body) => found.push(body),
                None => current = Some(String::new()),
            }
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    found.extend(current);
    found
}

/// The largest non-blank fenced block of `reply`.
pub fn largest_fence(reply: &str) -> Option<String> {
    fences(reply)
        .into_iter()
        .filter(|b| !b.trim().is_empty())
        .max_by_key(String::len)
}

/// Fences in pairs ("replace ```old``` with ```new```") read as SEARCH/REPLACE
/// blocks; `None` unless every pair applies.
fn apply_fence_pairs(program: &str, reply: &str) -> Option<AppliedReply> {
    let fences = fences(reply);
    if fences.len() < 2 || !fences.len().is_multiple_of(2) {
        return None;
    }
    let edits: String = fences
        .chunks(2)
        .map(|pair| {
            format!(
                "<<<<<<< SEARCH\n{}=======\n{}>>>>>>> REPLACE\n",
                pair[0], pair[1]
            )
        })
        .collect();
    let applied = diff::apply_reply(program, &edits).ok()?;
    Some(AppliedReply {
        program: applied.program,
        change: ReplyChange::FencePairs(applied.matches),
    })
}

fn apply_fenced(program: &str, reply: &str) -> Result<AppliedReply, ReplyError> {
    let file = SourceFile::parse(program).map_err(DiffError::Block)?;
    let code = largest_fence(reply).ok_or(ReplyError::NoCode)?;
    let eol = if program.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let code = code.replace('\n', eol);
    if code.contains(START_MARKER) || code.contains(END_MARKER) {
        let fenced = SourceFile::parse(&code).map_err(ReplyError::Markers)?;
        if fenced.regions() == file.regions() && !fenced.same_frame(&file) {
            return Err(ReplyError::OutsideRegions);
        }
        let program = file
            .with_regions(fenced.regions())
            .map_err(ReplyError::Markers)?;
        return Ok(AppliedReply {
            program,
            change: ReplyChange::Regions,
        });
    }
    let frame_lines = frame_lines(program, &file);
    let kept = drop_frame_chunks(&code, &frame_lines);
    let kept_defs = top_level_definitions(&kept);
    if let [(name, _)] = kept_defs.as_slice() {
        let mut regions = file.regions().to_vec();
        for region in regions.iter_mut() {
            if let Some(span) = definition_span(region, name) {
                let mut new_region = region[..span.start].to_string();
                new_region.push_str(kept.trim_end_matches(['\n', '\r']));
                new_region.push_str(eol);
                new_region.push_str(&region[span.end..]);
                *region = new_region;
                let program = file.with_regions(&regions).map_err(DiffError::Block)?;
                return Ok(AppliedReply {
                    program,
                    change: ReplyChange::Definition(name.clone()),
                });
            }
        }
    }
    if file.regions().len() != 1 {
        return Err(ReplyError::Ambiguous {
            regions: file.regions().len(),
        });
    }
    // A whole region must keep what the rest of the program may call.
    let defined: Vec<String> = kept_defs.into_iter().map(|(name, _)| name).collect();
    let lost: Vec<String> = top_level_definitions(&file.regions()[0])
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !defined.contains(name))
        .collect();
    if !lost.is_empty() {
        return Err(ReplyError::Fragment { missing: lost });
    }
    let program = file.with_regions(&[kept]).map_err(DiffError::Block)?;
    Ok(AppliedReply {
        program,
        change: ReplyChange::WholeRegion,
    })
}

/// The trimmed, non-blank lines of the frame (everything outside regions).
fn frame_lines(program: &str, file: &SourceFile) -> Vec<String> {
    let mut region_text: Vec<&str> = Vec::new();
    for region in file.regions() {
        region_text.extend(region.lines().map(str::trim));
    }
    if file.is_whole_file() {
        return Vec::new();
    }
    program
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !region_text.contains(l))
        .filter(|l| !l.contains(START_MARKER) && !l.contains(END_MARKER))
        .map(str::to_string)
        .collect()
}

fn indent_width(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Splits code into top-level chunks: a line at the base indentation and
/// the deeper or blank lines after it. Leading comments/decorators stay with
/// the chunk they precede.
fn top_level_chunks(code: &str) -> Vec<String> {
    let base = code
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(indent_width)
        .min()
        .unwrap_or(0);
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_has_head = false;
    for line in code.split_inclusive('\n') {
        let trimmed = line.trim();
        let at_base = !trimmed.is_empty() && indent_width(line) <= base;
        let is_prefix = trimmed.starts_with('#') || trimmed.starts_with('@');
        if at_base && current_has_head && !is_closing(trimmed) {
            chunks.push(std::mem::take(&mut current));
            current_has_head = false;
        }
        current.push_str(line);
        if at_base && !is_prefix {
            current_has_head = true;
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Lines at the base indentation that close a construct (`}` in C-like code).
fn is_closing(trimmed: &str) -> bool {
    trimmed.starts_with('}') || trimmed.starts_with(')') || trimmed.starts_with(']')
}

/// The first line of a chunk that is not a comment or decorator.
fn head_line(chunk: &str) -> &str {
    chunk
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('@'))
        .unwrap_or("")
}

/// Removes chunks whose head line repeats a frame line (the fixed parts of a
/// whole-program reply).
fn drop_frame_chunks(code: &str, frame_lines: &[String]) -> String {
    if frame_lines.is_empty() {
        return code.to_string();
    }
    top_level_chunks(code)
        .into_iter()
        .filter(|chunk| {
            let head = head_line(chunk);
            head.is_empty() || !frame_lines.iter().any(|f| f == head)
        })
        .collect::<String>()
        .trim_start_matches(['\n', '\r'])
        .to_string()
}

/// The name a definition line introduces (`def f(`, `fn f(`, `function f(`, `class C`).
fn definition_name(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for prefix in ["pub ", "async ", "export ", "static "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let after = ["def ", "fn ", "function ", "class "]
        .iter()
        .find_map(|kw| rest.strip_prefix(kw))?;
    let name: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Definitions at the base indentation of `code`, with their chunk text.
fn top_level_definitions(code: &str) -> Vec<(String, String)> {
    top_level_chunks(code)
        .into_iter()
        .filter_map(|chunk| definition_name(head_line(&chunk)).map(|name| (name, chunk)))
        .collect()
}

/// The byte span of the definition of `name` inside `region`: from its first
/// line (with the decorators and comments right above it) to the next line at
/// the same or lower indentation.
fn definition_span(region: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let lines: Vec<&str> = region.split_inclusive('\n').collect();
    let offsets: Vec<usize> = lines
        .iter()
        .scan(0, |at, l| {
            let start = *at;
            *at += l.len();
            Some(start)
        })
        .collect();
    let head = lines
        .iter()
        .position(|l| definition_name(l).as_deref() == Some(name))?;
    let indent = indent_width(lines[head]);
    let mut start = head;
    while start > 0 {
        let above = lines[start - 1].trim();
        if (above.starts_with('@') || above.starts_with('#'))
            && indent_width(lines[start - 1]) == indent
        {
            start -= 1;
        } else {
            break;
        }
    }
    let mut end = head + 1;
    while end < lines.len() {
        let line = lines[end];
        let trimmed = line.trim();
        if !trimmed.is_empty() && indent_width(line) <= indent {
            if is_closing(trimmed) {
                end += 1;
            }
            break;
        }
        end += 1;
    }
    // Blank lines at the end belong to the gap, not the definition.
    while end > head + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let stop = offsets.get(end).copied().unwrap_or(region.len());
    Some(offsets[start]..stop)
}
