//! Just enough lexing to find code outside strings and comments, in any
//! language, and the numeric literals within it.

use std::ops::Range;

/// Line-comment openers for a file extension; unknown extensions get the common ones.
pub(crate) fn comment_prefixes(extension: &str) -> &'static [&'static str] {
    match extension {
        "py" | "sh" | "bash" | "rb" | "r" | "R" | "pl" | "jl" | "toml" | "yaml" | "yml" | "nim" => {
            &["#"]
        }
        "c" | "h" | "cc" | "cpp" | "hpp" | "rs" | "go" | "java" | "js" | "ts" | "kt" | "swift"
        | "cs" | "scala" | "zig" => &["//"],
        "lua" | "sql" | "hs" => &["--"],
        _ => &["#", "//"],
    }
}

/// For each byte of `text`, whether it is code (not inside a string or comment).
pub(crate) fn code_mask(text: &str, comments: &[&str]) -> Vec<bool> {
    let bytes = text.as_bytes();
    let mut mask = vec![true; bytes.len()];
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if comments.iter().any(|c| rest.starts_with(c)) {
            let end = rest.find('\n').map_or(bytes.len(), |n| i + n);
            mask[i..end].fill(false);
            i = end;
            continue;
        }
        let quote = bytes[i];
        if quote == b'"' || quote == b'\'' || quote == b'`' {
            let triple =
                rest.len() >= 3 && rest.as_bytes()[1] == quote && rest.as_bytes()[2] == quote;
            let end = if triple {
                rest[3..]
                    .find(&rest[..3])
                    .map_or(bytes.len(), |n| i + 3 + n + 3)
            } else {
                string_end(bytes, i, quote)
            };
            mask[i..end].fill(false);
            i = end;
            continue;
        }
        i += 1;
    }
    mask
}

/// The end (exclusive) of a one-line string opened at `start`.
fn string_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut j = start + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'\n' => return j,
            b if b == quote => return j + 1,
            _ => j += 1,
        }
    }
    bytes.len()
}

/// Byte ranges of plain decimal literals (`3`, `0.25`, `.5`, `1e-3`) in code.
///
/// Literals glued to identifiers (`x1`, `f32`), hex/binary forms and digit
/// separators are left out: changing them would not mean "a nearby number".
pub(crate) fn numeric_literals(text: &str, mask: &[bool]) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_number =
            b[i].is_ascii_digit() || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        let glued = i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b'.');
        if !mask[i] || !starts_number || glued {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i < b.len() && b[i] == b'.' && !b.get(i + 1).is_some_and(|&c| c == b'.') {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
            }
        }
        if i < b.len() && (is_ident(b[i]) || b[i] == b'.') {
            while i < b.len() && (is_ident(b[i]) || b[i] == b'.') {
                i += 1;
            }
            continue;
        }
        found.push(start..i);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(text: &str) -> Vec<&str> {
        let mask = code_mask(text, &["#"]);
        numeric_literals(text, &mask)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn finds_plain_numbers_only_in_code() {
        assert_eq!(
            literals("x = 3 + 0.25 * y1 - .5e-3  # 7 in a comment\ns = 'no 8 here'\nz = f32(2)\n"),
            ["3", "0.25", ".5e-3", "2"]
        );
    }

    #[test]
    fn skips_glued_hex_and_separated_forms() {
        assert_eq!(
            literals("a = 0x1F + 1_000 + 2.5f + obj.3\nb = 10\n"),
            ["10"]
        );
    }

    #[test]
    fn triple_quoted_strings_are_not_code() {
        assert_eq!(literals("\"\"\"doc 5\nmore 6\"\"\"\nx = 4\n"), ["4"]);
    }
}
