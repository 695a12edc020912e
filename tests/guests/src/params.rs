//! Parameters a scenario hands a test guest on its command line (`/chosen/bootargs`), as
//! space-separated `key=value` words, e.g. `tg.host-ram-end=0x60000000`.

/// The value of the first word `key=value` in `cmdline`; `None` if no word has that key.
pub fn param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

/// A number written in hexadecimal (`0x` prefix) or decimal; `None` for anything else,
/// including a value that does not fit in 64 bits.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The number `key` names on `cmdline`.
pub fn param_u64(cmdline: &str, key: &str) -> Option<u64> {
    parse_u64(param(cmdline, key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_key_among_words() {
        let c = "console=ttyAMA0  tg.host-ram-end=0x60000000 quiet";
        assert_eq!(param(c, "tg.host-ram-end"), Some("0x60000000"));
        assert_eq!(param(c, "console"), Some("ttyAMA0"));
        assert_eq!(param(c, "quiet"), None, "a word without a value");
        assert_eq!(
            param(c, "tg.host-ram"),
            None,
            "a prefix of a key is not the key"
        );
        assert_eq!(param("", "x"), None);
        assert_eq!(param("x=1 x=2", "x"), Some("1"), "the first one wins");
    }

    #[test]
    fn parses_hex_and_decimal_only() {
        assert_eq!(parse_u64("0x60000000"), Some(0x6000_0000));
        assert_eq!(parse_u64("0XfF"), Some(0xff));
        assert_eq!(parse_u64("4096"), Some(4096));
        assert_eq!(parse_u64("0x"), None);
        assert_eq!(parse_u64("0x1_0000"), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("0x1ffffffffffffffff"), None);
        assert_eq!(param_u64("a=0x10 b=zz", "a"), Some(0x10));
        assert_eq!(param_u64("a=0x10 b=zz", "b"), None);
    }
}
