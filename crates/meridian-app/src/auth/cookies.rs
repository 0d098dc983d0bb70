//! The session cookie: HttpOnly, SameSite=Lax, Path=/, and with HTTPS `Secure` plus the
//! `__Host-` prefix (which browsers only accept from a secure origin without a Domain).

use axum::http::{HeaderMap, HeaderValue, header};

use crate::config::AppConfig;

pub fn session_cookie_name(config: &AppConfig) -> &'static str {
    if config.secure_cookies() {
        "__Host-meridian_session"
    } else {
        "meridian_session"
    }
}

pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

pub fn session_cookie(config: &AppConfig, secret: &str) -> HeaderValue {
    let secure = if config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let max_age = config.session_absolute_lifetime.as_secs();
    let value = format!(
        "{}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        session_cookie_name(config)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn clear_session_cookie(config: &AppConfig) -> HeaderValue {
    let secure = if config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        session_cookie_name(config)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; meridian_session=abc"),
        );
        assert_eq!(read_cookie(&headers, "meridian_session"), Some("abc"));
        assert_eq!(read_cookie(&headers, "other"), None);
    }

    #[test]
    fn secure_behind_https() {
        let config = AppConfig {
            public_url: "https://crm.example.com".into(),
            ..AppConfig::default()
        };
        let cookie = session_cookie(&config, "s3cret");
        let text = cookie.to_str().expect("ascii");
        assert!(text.starts_with("__Host-meridian_session=s3cret"));
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Lax") && text.contains("Secure")
        );
        let plain = session_cookie(&AppConfig::default(), "s3cret");
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
    }
}
