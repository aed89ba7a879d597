//! Stable content hashes for programs.

/// A 64-bit FNV-1a hash of `code`, stable across Rust versions and platforms
/// (unlike `DefaultHasher`), so it can be stored in the database.
pub fn code_hash(code: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    code.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(code_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(code_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(code_hash("x = 1"), code_hash("x = 2"));
    }
}
