//! Email address normalization: trimmed, lower-cased, and shaped like `local@domain.tld`.

pub const MAX_EMAIL_LENGTH: usize = 254;

/// Normalizes an address for storage and comparison, or says why it is not one.
pub fn normalize_email(input: &str) -> Result<String, String> {
    let email = input.trim().to_lowercase();
    if email.is_empty() {
        return Err("is required".to_owned());
    }
    if email.len() > MAX_EMAIL_LENGTH {
        return Err(format!("must be at most {MAX_EMAIL_LENGTH} characters"));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("is not an email address".to_owned());
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    let local_ok = !local.is_empty()
        && !local.contains('@')
        && !local.chars().any(|c| c.is_whitespace() || c.is_control());
    if domain_ok && local_ok {
        Ok(email)
    } else {
        Err("is not an email address".to_owned())
    }
}

/// The domain part of a normalized address.
pub fn email_domain(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// Normalizes a domain for an allowlist entry (`@example.com` and ` Example.COM ` both become
/// `example.com`).
pub fn normalize_domain(input: &str) -> Result<String, String> {
    let domain = input.trim().trim_start_matches('@').to_lowercase();
    normalize_email(&format!("x@{domain}")).map(|_| domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_space() {
        assert_eq!(
            normalize_email("  Ada@Example.COM "),
            Ok("ada@example.com".to_owned())
        );
        assert_eq!(email_domain("ada@example.com"), "example.com");
    }

    #[test]
    fn rejects_non_addresses() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@ex..com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn normalizes_domains() {
        assert_eq!(
            normalize_domain(" @Example.com"),
            Ok("example.com".to_owned())
        );
        assert!(normalize_domain("not a domain").is_err());
    }
}
