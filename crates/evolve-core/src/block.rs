//! EVOLVE-BLOCK regions: the only parts of a program evolution may change.
//!
//! A program is split into alternating *frame* text (never changed) and
//! *regions* (evolvable). Marker lines contain `EVOLVE-BLOCK-START` or
//! `EVOLVE-BLOCK-END` and belong to the frame, so any comment syntax works.
//! A file without markers is one region as a whole.

use thiserror::Error;

/// The text that opens an evolvable region.
pub const START_MARKER: &str = "EVOLVE-BLOCK-START";
/// The text that closes an evolvable region.
pub const END_MARKER: &str = "EVOLVE-BLOCK-END";

/// A marker structure that cannot be split into regions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockError {
    /// A START marker appeared inside an open region.
    #[error(
        "line {line}: EVOLVE-BLOCK-START inside a block that is already open (opened at line {opened})"
    )]
    Nested {
        /// 1-based line of the offending marker.
        line: usize,
        /// 1-based line where the open block started.
        opened: usize,
    },
    /// An END marker appeared with no open region.
    #[error("line {line}: EVOLVE-BLOCK-END without a matching EVOLVE-BLOCK-START")]
    UnmatchedEnd {
        /// 1-based line of the offending marker.
        line: usize,
    },
    /// A region was opened and never closed.
    #[error("line {line}: EVOLVE-BLOCK-START is never closed by EVOLVE-BLOCK-END")]
    Unclosed {
        /// 1-based line of the START marker.
        line: usize,
    },
    /// Replacement text was given for the wrong number of regions.
    #[error("expected {expected} region(s), got {got}")]
    RegionCount {
        /// How many regions the program has.
        expected: usize,
        /// How many replacements were given.
        got: usize,
    },
}

/// A program split into frame text and evolvable regions.
///
/// Invariant: `frames.len() == regions.len() + 1`; rendering interleaves them
/// as `frame[0] region[0] frame[1] … region[n-1] frame[n]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    frames: Vec<String>,
    regions: Vec<String>,
    /// 1-based line number where each region's text starts in the source.
    region_lines: Vec<usize>,
}

impl SourceFile {
    /// Splits `text` into frame and regions.
    pub fn parse(text: &str) -> Result<SourceFile, BlockError> {
        let mut frames = Vec::new();
        let mut regions = Vec::new();
        let mut region_lines = Vec::new();
        let mut current = String::new();
        let mut open_at: Option<usize> = None;
        for (index, line) in text.split_inclusive('\n').enumerate() {
            let number = index + 1;
            if line.contains(START_MARKER) {
                if let Some(opened) = open_at {
                    return Err(BlockError::Nested {
                        line: number,
                        opened,
                    });
                }
                current.push_str(line);
                frames.push(std::mem::take(&mut current));
                open_at = Some(number);
                region_lines.push(number + 1);
            } else if line.contains(END_MARKER) {
                if open_at.take().is_none() {
                    return Err(BlockError::UnmatchedEnd { line: number });
                }
                regions.push(std::mem::take(&mut current));
                current.push_str(line);
            } else {
                current.push_str(line);
            }
        }
        if let Some(line) = open_at {
            return Err(BlockError::Unclosed { line });
        }
        if regions.is_empty() {
            return Ok(SourceFile {
                frames: vec![String::new(), String::new()],
                regions: vec![current],
                region_lines: vec![1],
            });
        }
        frames.push(current);
        Ok(SourceFile {
            frames,
            regions,
            region_lines,
        })
    }

    /// The evolvable regions, in file order.
    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    /// The 1-based source line where each region starts.
    pub fn region_lines(&self) -> &[usize] {
        &self.region_lines
    }

    /// True when `other` has exactly the same frame text (only regions differ).
    pub fn same_frame(&self, other: &SourceFile) -> bool {
        self.frames == other.frames
    }

    /// Renders the program with `regions` in place of the current ones.
    ///
    /// A non-empty replacement that lacks a final newline gets one, so the
    /// END marker always stays on its own line.
    pub fn with_regions<S: AsRef<str>>(&self, regions: &[S]) -> Result<String, BlockError> {
        if regions.len() != self.regions.len() {
            return Err(BlockError::RegionCount {
                expected: self.regions.len(),
                got: regions.len(),
            });
        }
        let mut out = String::with_capacity(self.render_len());
        for (frame, region) in self.frames.iter().zip(regions) {
            out.push_str(frame);
            let region = region.as_ref();
            out.push_str(region);
            if !region.is_empty() && !region.ends_with('\n') && !self.is_whole_file() {
                out.push('\n');
            }
        }
        if let Some(last) = self.frames.last() {
            out.push_str(last);
        }
        Ok(out)
    }

    /// Renders the program unchanged.
    pub fn render(&self) -> String {
        self.with_regions(&self.regions).unwrap_or_default()
    }

    /// True when the file had no markers and is one region as a whole.
    pub fn is_whole_file(&self) -> bool {
        self.frames.iter().all(String::is_empty) && self.regions.len() == 1
    }

    fn render_len(&self) -> usize {
        self.frames
            .iter()
            .chain(&self.regions)
            .map(String::len)
            .sum::<usize>()
            + self.regions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAM: &str = "import math\n# EVOLVE-BLOCK-START\nx = 1\ny = 2\n# EVOLVE-BLOCK-END\nprint(x)\n// EVOLVE-BLOCK-START\nz = 3\n// EVOLVE-BLOCK-END\n";

    #[test]
    fn splits_regions_and_renders_back_exactly() {
        let file = SourceFile::parse(PROGRAM).unwrap();
        assert_eq!(file.regions(), ["x = 1\ny = 2\n", "z = 3\n"]);
        assert_eq!(file.region_lines(), [3, 8]);
        assert_eq!(file.render(), PROGRAM);
    }

    #[test]
    fn replacing_regions_never_touches_the_frame() {
        let file = SourceFile::parse(PROGRAM).unwrap();
        let new = file.with_regions(&["x = 10", "z = 30\nw = 1\n"]).unwrap();
        assert_eq!(
            new,
            "import math\n# EVOLVE-BLOCK-START\nx = 10\n# EVOLVE-BLOCK-END\nprint(x)\n// EVOLVE-BLOCK-START\nz = 30\nw = 1\n// EVOLVE-BLOCK-END\n"
        );
        let reparsed = SourceFile::parse(&new).unwrap();
        assert!(reparsed.same_frame(&file));
    }

    #[test]
    fn a_file_without_markers_is_one_region() {
        let file = SourceFile::parse("a = 1\nb = 2").unwrap();
        assert!(file.is_whole_file());
        assert_eq!(file.regions(), ["a = 1\nb = 2"]);
        assert_eq!(file.with_regions(&["c"]).unwrap(), "c");
    }

    #[test]
    fn marker_errors_name_the_line() {
        let nested = "# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-START\n";
        assert_eq!(
            SourceFile::parse(nested),
            Err(BlockError::Nested { line: 2, opened: 1 })
        );
        assert_eq!(
            SourceFile::parse("a\n# EVOLVE-BLOCK-END\n"),
            Err(BlockError::UnmatchedEnd { line: 2 })
        );
        assert_eq!(
            SourceFile::parse("a\n# EVOLVE-BLOCK-START\nb\n"),
            Err(BlockError::Unclosed { line: 2 })
        );
    }

    #[test]
    fn wrong_region_count_is_an_error() {
        let file = SourceFile::parse(PROGRAM).unwrap();
        assert_eq!(
            file.with_regions(&["only one"]),
            Err(BlockError::RegionCount {
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn crlf_files_keep_their_line_endings() {
        let text = "a\r\n# EVOLVE-BLOCK-START\r\nx = 1\r\n# EVOLVE-BLOCK-END\r\nb\r\n";
        let file = SourceFile::parse(text).unwrap();
        assert_eq!(file.regions(), ["x = 1\r\n"]);
        assert_eq!(file.render(), text);
    }
}
