//! Secret redaction: text that may hold locations or connection strings, made safe
//! to log, record in lineage or show in an error.
//!
//! Owns: nothing. May call: nothing (a leaf, used by `config`, `lineage` and `ingest`).

/// Removes secrets from text that may hold locations or connection strings:
/// the password of every `scheme://user:password@host` (whatever the scheme),
/// `password=`/`secret=`/`token=`-style parameters (URL query or libpq
/// `key=value` form), and AWS-style secret keys.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // 1. userinfo passwords: scan every "://".
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or white space.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_parameters(&out)
}

const SECRET_KEYS: [&str; 8] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "access_key",
    "secret_access_key",
    "apikey",
];

fn redact_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        // A key starts after a separator (or at the start).
        let at_key_start =
            i == 0 || matches!(bytes[i - 1], b'?' | b'&' | b' ' | b';' | b'\t' | b',');
        if at_key_start {
            let key_end = text[i..].find('=').map(|k| i + k).filter(|&k| {
                text[i..k]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
            if let Some(k) = key_end {
                let key = text[i..k].to_ascii_lowercase().replace('-', "_");
                if SECRET_KEYS
                    .iter()
                    .any(|s| key == *s || key.ends_with(&format!("_{s}")))
                {
                    out.push_str(&text[i..=k]);
                    out.push_str("***");
                    // The value ends at the next separator; a quoted value at its quote.
                    let value = &text[k + 1..];
                    let len = if let Some(q) = value.strip_prefix('\'') {
                        q.find('\'').map_or(value.len(), |e| e + 2)
                    } else {
                        value
                            .find(['&', ' ', ';', '\t', ',', '#'])
                            .unwrap_or(value.len())
                    };
                    i = k + 1 + len;
                    continue;
                }
            }
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_any_scheme() {
        for (input, expected) in [
            (
                "postgres://app:s3cr3t@db:5432/sales",
                "postgres://app:***@db:5432/sales",
            ),
            (
                "mysql://root:p%40ss@127.0.0.1/x?ssl=1",
                "mysql://root:***@127.0.0.1/x?ssl=1",
            ),
            ("weird+scheme://u:pa:ss@h", "weird+scheme://u:***@h"),
            ("s3://bucket/key", "s3://bucket/key"),
            ("http://user@host/p", "http://user@host/p"),
            (
                "error connecting to postgres://a:b@h/db: refused",
                "error connecting to postgres://a:***@h/db: refused",
            ),
            (
                "host=db user=app password=s3cr3t dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            (
                "host=db password='two words' port=1",
                "host=db password=*** port=1",
            ),
            ("https://h/api?token=abc&x=1", "https://h/api?token=***&x=1"),
            ("s3_secret_access_key=AKIAxyz", "s3_secret_access_key=***"),
        ] {
            assert_eq!(redact(input), expected, "{input}");
        }
    }
}
