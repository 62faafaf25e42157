//! The words of the YAML layer's messages: what a value was, what was
//! expected (with an example of the accepted form), and the nearest valid name.

use serde::de::Unexpected;

/// What a plain scalar is under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text,
}

pub fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Types a plain scalar (YAML 1.2 core schema; `yes`, `on` and dates are text).
pub fn resolve(text: &str) -> Resolved {
    if is_null(text) {
        return Resolved::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return u64::from_str_radix(hex, 16).map_or(Resolved::Text, Resolved::Unsigned);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return u64::from_str_radix(oct, 8).map_or(Resolved::Text, Resolved::Unsigned);
        }
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if text.starts_with('-') {
            return text.parse().map_or(Resolved::Text, Resolved::Signed);
        }
        return digits.parse().map_or(Resolved::Text, Resolved::Unsigned);
    }
    if is_float(digits) {
        return text.parse().map_or(Resolved::Text, Resolved::Float);
    }
    Resolved::Text
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(t: &str) -> bool {
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (!a.is_empty() || !b.is_empty())
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
                && !(a.is_empty() && b.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok && (mantissa.contains('.') || exponent.is_some())
}

/// Whether a value may be quoted back in a message: short, one line, not PEM.
/// (Anything longer could be key material written in the wrong place.)
pub fn quotable(text: &str) -> bool {
    text.len() <= 64 && !text.contains('\n') && !text.contains("-----")
}

/// The nearest valid name: the same up to case and `-`/`_`, else within a
/// small edit distance.
pub fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let n = norm(name);
    if let Some(c) = candidates.iter().find(|c| norm(c) == n) {
        return Some(c);
    }
    let limit = (n.chars().count() / 3).clamp(1, 3);
    let near = candidates
        .iter()
        .map(|c| (distance(&n, &norm(c)), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    if near.is_some() {
        return near;
    }
    // A shortened name (`refresh` for `refresh_after`), when only one fits.
    let mut prefixed = candidates
        .iter()
        .filter(|c| n.chars().count() >= 3 && norm(c).starts_with(&n));
    match (prefixed.next(), prefixed.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// Optimal string alignment distance (a transposition counts as one edit).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

pub fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as people would name it.
pub fn found(u: &Unexpected<'_>) -> String {
    match u {
        Unexpected::Bool(b) => format!("`{b}` (a boolean)"),
        Unexpected::Unsigned(n) => format!("the number {n}"),
        Unexpected::Signed(n) => format!("the number {n}"),
        Unexpected::Float(f) => format!("the number {f}"),
        Unexpected::Str(s) if quotable(s) => format!("the text `{s}`"),
        Unexpected::Str(_) => "a text value".into(),
        Unexpected::Char(c) => format!("the text `{c}`"),
        Unexpected::Unit => "an empty value".into(),
        Unexpected::Seq => "a list".into(),
        Unexpected::Map => "a mapping".into(),
        Unexpected::Option => "an optional value".into(),
        other => other.to_string(),
    }
}

/// What serde expected, as people would name it, with the accepted form.
pub fn expected(exp: &str) -> String {
    match exp {
        "a string" | "string" => "a string".into(),
        "a sequence" => "a list (`[a, b]`, or one `- item` per line)".into(),
        "a map" => "a mapping (`name: value` lines)".into(),
        "a duration" => DURATION.into(),
        "a boolean" => "`true` or `false`".into(),
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number (0 or more)".into(),
        "isize" | "i64" | "i32" | "i16" | "i8" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        e if e.starts_with("struct ") => "a mapping of fields (`field: value` lines)".into(),
        e if e.starts_with("variant identifier") => "a name".into(),
        e => e.to_owned(),
    }
}

pub const DURATION: &str = "a duration such as `45d`, `5m`, `300s` or `250ms`";

/// A hint for a value of the wrong type or form, given what was expected.
pub fn hint(exp: &str, u: &Unexpected<'_>) -> Option<String> {
    match (exp, u) {
        ("a duration", Unexpected::Unsigned(n)) => Some(format!(
            "a bare number has no unit: write `{n}s` (or `{n}ms`, `{n}m`)"
        )),
        ("a duration", Unexpected::Float(_)) => {
            Some("write a whole number with a unit, e.g. `1500ms` for 1.5 seconds".into())
        }
        ("a duration", Unexpected::Str(s)) if s.starts_with('P') || s.starts_with('p') => {
            Some("ISO 8601 durations (`P45D`, `PT5M`) are not read: write `45d` or `5m`".into())
        }
        ("a duration", Unexpected::Str(_)) => {
            Some("units: `ms`, `s`, `m`, `h`, `d` (e.g. `30d`, `2s`)".into())
        }
        ("a boolean", Unexpected::Str(s)) => {
            let lower = s.to_ascii_lowercase();
            if matches!(lower.as_str(), "yes" | "on" | "y") {
                Some(format!("YAML 1.2 reads `{s}` as text: write `true`"))
            } else if matches!(lower.as_str(), "no" | "off" | "n") {
                Some(format!("YAML 1.2 reads `{s}` as text: write `false`"))
            } else {
                None
            }
        }
        ("a sequence", Unexpected::Str(s)) if quotable(s) => {
            Some(format!("write a list, e.g. `[{s}]`"))
        }
        (e, Unexpected::Unit) if e == "a map" || e.starts_with("struct ") => Some(
            "the value is empty: indent its fields below it, write `{}`, or remove the line".into(),
        ),
        _ => None,
    }
}

/// A YAML syntax error in operator terms.
pub fn syntax(info: &str) -> String {
    let hint = if info.contains("mapping values are not allowed") {
        Some("a `: ` inside an unquoted value, or a key indented under a value: quote the value or fix the indentation")
    } else if info.contains("did not find expected key") || info.contains("block mapping") {
        Some("check this line's indentation against the lines above it")
    } else if info.contains("did not find expected ',' or") || info.contains("flow") {
        Some("an unclosed `[` or `{`, or a missing comma")
    } else if info.contains("found unexpected end of stream") || info.contains("quoted scalar") {
        Some("an unclosed quote")
    } else if info.contains("cannot start any token") {
        Some("a value starting with `@` or a backtick must be quoted")
    } else {
        None
    };
    match hint {
        Some(h) => format!("YAML syntax error: {info} ({h})"),
        None => format!("YAML syntax error: {info}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema() {
        assert_eq!(resolve("0x0578"), Resolved::Unsigned(1400));
        assert_eq!(resolve("300"), Resolved::Unsigned(300));
        assert_eq!(resolve("-3"), Resolved::Signed(-3));
        assert_eq!(resolve("1.5"), Resolved::Float(1.5));
        assert_eq!(resolve("1e3"), Resolved::Float(1000.0));
        assert_eq!(resolve("yes"), Resolved::Text);
        assert_eq!(resolve("2027-01-31"), Resolved::Text);
        assert_eq!(resolve("45d"), Resolved::Text);
        assert_eq!(resolve("0.0.0.0:50051"), Resolved::Text);
        assert_eq!(resolve("."), Resolved::Text);
        assert_eq!(resolve("~"), Resolved::Null);
        assert_eq!(resolve("False"), Resolved::Bool(false));
    }

    #[test]
    fn suggestions() {
        let fields = ["private_key", "provider_id", "padding", "key_name"];
        assert_eq!(suggest("privte_key", &fields), Some("private_key"));
        assert_eq!(suggest("private-key", &fields), Some("private_key"));
        assert_eq!(suggest("keyname", &fields), Some("key_name"));
        assert_eq!(suggest("colour", &fields), None);
        assert_eq!(
            suggest("listn", &["listen", "health_listen"]),
            Some("listen")
        );
        assert_eq!(suggest("raw_rsa", &["raw-rsa", "raw-aes"]), Some("raw-rsa"));
        assert_eq!(
            suggest("refresh", &["refresh_after", "stale_if_error"]),
            Some("refresh_after")
        );
        assert_eq!(suggest("max", &["max_entries", "max_age"]), None);
    }
}
