//! Password policy: 8 to 256 characters, no composition rules, and not one of the passwords that
//! top the breach-frequency lists (NIST SP 800-63B, section 5.1.1.2).

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 256;

const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

fn is_common(password: &str) -> bool {
    let lowered = password.to_lowercase();
    COMMON_PASSWORDS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .any(|line| line == lowered)
}

/// Checks a new password against the policy; the error is a message for the `password` field.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if length > MAX_PASSWORD_CHARS {
        return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
    }
    if is_common(password) {
        return Err("is one of the most commonly used passwords; choose another".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bounds() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("correct horse").is_ok());
        assert!(check_new_password(&"x".repeat(256)).is_ok());
        assert!(check_new_password(&"x".repeat(257)).is_err());
        // Characters, not bytes: eight two-byte characters are enough.
        assert!(check_new_password("éééééééé").is_ok());
    }

    #[test]
    fn common_passwords_are_refused_whatever_the_case() {
        assert!(check_new_password("password123").is_err());
        assert!(check_new_password("PassWord123").is_err());
        assert!(check_new_password("qwertyuiop").is_err());
        assert!(check_new_password("tangerine-kettle-47").is_ok());
    }

    #[test]
    fn no_composition_rules() {
        assert!(check_new_password("all lowercase words here").is_ok());
    }
}
