//! Amounts as people write them: sizes and byte rates with curl's 1024-based units.

/// What an amount counts, for its messages.
#[derive(Clone, Copy)]
enum Amount {
    Size,
    Rate,
}

/// Parses a size in bytes: digits, fractions allowed, with an optional suffix `K`, `M`,
/// `G` or `T` (either case) that is 1024-based, as in curl, and an optional trailing `B`.
///
/// ```
/// assert_eq!(fetchpool::parse_size("64M"), Ok(64 << 20));
/// assert_eq!(fetchpool::parse_size("1.5k"), Ok(1536));
/// assert!(fetchpool::parse_size("0").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, String> {
    scaled(s, s.trim(), Amount::Size)
}

/// Parses a rate like curl's `--limit-rate`: bytes per second, with an optional suffix
/// `K`, `M`, `G` or `T` (either case) that is 1024-based, as in curl: `500K` is 512,000
/// bytes/s and `2M` is 2,097,152. Fractions are allowed: `1.5M`. A trailing `B`, `/s` or
/// `B/s` is accepted (`10MB/s`).
///
/// ```
/// assert_eq!(fetchpool::parse_rate("2M"), Ok(2 * 1024 * 1024));
/// assert_eq!(fetchpool::parse_rate("500k"), Ok(500 * 1024));
/// assert_eq!(fetchpool::parse_rate("1000"), Ok(1000));
/// ```
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    scaled(s, t.strip_suffix("/s").unwrap_or(t), Amount::Rate)
}

/// `t` (the trimmed text of `s`, any per-second suffix gone) as a whole number of bytes.
fn scaled(s: &str, t: &str, amount: Amount) -> Result<u64, String> {
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let (num, scale) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let scale: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => {
                    return Err(format!(
                        "unknown unit '{c}' in '{s}'; use K, M or G (1024-based, as curl)"
                    ));
                }
            };
            (&t[..i], scale)
        }
        _ => (t, 1),
    };
    let value: f64 = num.trim().parse().map_err(|_| match amount {
        Amount::Size => format!("'{s}' is not a size; write bytes like 500K, 64M or 1G"),
        Amount::Rate => {
            format!("'{s}' is not a rate; write bytes per second like 500K, 10M or 1.5G")
        }
    })?;
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(match amount {
            Amount::Size => format!("'{s}' must be at least 1 byte"),
            Amount::Rate => format!("'{s}' must be at least 1 byte per second"),
        });
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_1024_based_like_curl() {
        assert_eq!(parse_rate("10M"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_rate("1.5k"), Ok(1536));
        assert_eq!(parse_rate("2G"), Ok(2 << 30));
        assert_eq!(parse_rate("10MB/s"), Ok(10 << 20));
        assert_eq!(parse_rate(" 42 "), Ok(42));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10X").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1M").is_err());
    }

    #[test]
    fn sizes_are_1024_based_like_curl() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("10M/s").is_err(), "a size is not a rate");
        assert_eq!(
            parse_size("1.2.3"),
            Err("'1.2.3' is not a size; write bytes like 500K, 64M or 1G".into())
        );
    }
}
