//! Budget names and the Redis keys derived from them.

use crate::ConfigError;

/// Longest accepted budget name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// Checks a budget name: 1 to 128 characters from `[A-Za-z0-9._:-]`.
///
/// Braces are excluded so a name cannot change the hash tag (and so the cluster slot or the
/// keys of another budget), and whitespace, `*` and other glob characters are excluded so a
/// name cannot be confused with a key pattern in operators' tooling.
pub(crate) fn validate(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ConfigError::new(
            "name",
            name.chars().take(MAX_NAME_LEN).collect::<String>(),
            format!("must be 1 to {MAX_NAME_LEN} characters long"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(ConfigError::new(
            "name",
            name,
            format!("contains {bad:?}; only ASCII letters, digits and . _ : - are allowed"),
        ));
    }
    Ok(())
}

/// The single key holding a budget's window. The whole `{rb:NAME}` part is the hash tag, so
/// every key of one budget lands in one cluster slot, and no other name maps to this key.
pub(crate) fn window_key(name: &str) -> String {
    format!("{{rb:{name}}}:w")
}

/// The single key holding an adaptive budget's stock (same hash tag as [`window_key`]).
pub(crate) fn stock_key(name: &str) -> String {
    format!("{{rb:{name}}}:q")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["checkout", "svc.payments:v2", "a-b_c", "X"] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_names_that_could_reach_other_keys() {
        for bad in ["", "a}b", "{x}", "a b", "a*", "a\nb", "é", &"x".repeat(129)] {
            let err = validate(bad).unwrap_err();
            assert_eq!(err.field(), "name", "{bad:?}");
        }
    }

    #[test]
    fn key_has_one_hash_tag() {
        assert_eq!(window_key("svc"), "{rb:svc}:w");
        assert_eq!(stock_key("svc"), "{rb:svc}:q");
    }
}
