//! Field-level validation errors, collected so a form or API call reports every problem at once.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Accumulates field errors while input is parsed; `finish` turns them into a result.
#[derive(Debug, Default)]
pub struct Validation {
    errors: Vec<FieldError>,
}

impl Validation {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Records the error of a fallible parse and returns its value when it succeeded.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.add(field, message);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// A required, trimmed text of bounded length (counted in characters, not bytes).
pub fn required_text(value: &str, min: usize, max: usize) -> Result<String, String> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    if length == 0 {
        Err("is required".to_owned())
    } else if length < min {
        Err(format!("must be at least {min} characters"))
    } else if length > max {
        Err(format!("must be at most {max} characters"))
    } else {
        Ok(trimmed.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_error() {
        let mut v = Validation::new();
        assert_eq!(v.check("name", required_text("  ", 1, 10)), None);
        assert_eq!(
            v.check("org", required_text(" Acme ", 1, 10)),
            Some("Acme".to_owned())
        );
        v.add("email", "is not an email address");
        let errors = v.finish().expect_err("two errors");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "name");
        assert_eq!(errors[0].message, "is required");
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert!(required_text("ééé", 1, 3).is_ok());
        assert_eq!(
            required_text("éééé", 1, 3),
            Err("must be at most 3 characters".to_owned())
        );
    }
}
