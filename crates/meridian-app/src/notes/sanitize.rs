//! Rich text from the editor goes through an allow-list (ammonia) before it is stored, so a note
//! can never carry script, styles, event handlers or `javascript:` links into someone's page.

use std::collections::HashSet;
use std::sync::LazyLock;

pub const MIN_NOTE_CHARS: usize = 2;
pub const MAX_NOTE_CHARS: usize = 4000;

static NOTE_HTML: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut builder = ammonia::Builder::empty();
    builder
        .tags(HashSet::from([
            "p",
            "br",
            "strong",
            "em",
            "ul",
            "ol",
            "li",
            "a",
            "blockquote",
        ]))
        .tag_attributes(std::collections::HashMap::from([(
            "a",
            HashSet::from(["href"]),
        )]))
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .clean_content_tags(HashSet::from(["script", "style"]))
        .link_rel(Some("noopener noreferrer"));
    builder
});

static PLAIN_TEXT: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut builder = ammonia::Builder::empty();
    builder.clean_content_tags(HashSet::from(["script", "style"]));
    builder
});

/// The note's HTML, cleaned, and its plain text (for search and length rules).
pub fn clean_note(html: &str) -> Result<(String, String), String> {
    let clean = NOTE_HTML.clean(html).to_string();
    let text = plain_text(&clean);
    let length = text.chars().count();
    if length < MIN_NOTE_CHARS {
        return Err(format!(
            "must have at least {MIN_NOTE_CHARS} characters of text"
        ));
    }
    if length > MAX_NOTE_CHARS {
        return Err(format!(
            "must have at most {MAX_NOTE_CHARS} characters of text"
        ));
    }
    Ok((clean, text))
}

fn plain_text(html: &str) -> String {
    let spaced = html
        .replace("<br>", " ")
        .replace("</p>", " ")
        .replace("</li>", " ");
    let stripped = PLAIN_TEXT.clean(&spaced).to_string();
    let unescaped = stripped
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    unescaped.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_formatting_and_drops_everything_else() {
        let (html, text) = clean_note(
            r#"<p onclick="x()">Hi <strong>there</strong> <a href="https://e.com" target="_blank">link</a></p><script>alert(1)</script><img src=x onerror=alert(1)>"#,
        )
        .expect("valid");
        assert_eq!(
            html,
            r#"<p>Hi <strong>there</strong> <a href="https://e.com" rel="noopener noreferrer">link</a></p>"#
        );
        assert_eq!(text, "Hi there link");
    }

    #[test]
    fn refuses_script_links_and_empty_notes() {
        let (html, _) =
            clean_note(r#"<a href="javascript:alert(1)">click me</a>"#).expect("text remains");
        assert!(!html.contains("javascript"));
        assert!(clean_note("<p> </p>").is_err());
        assert!(clean_note("<script>long enough script</script>").is_err());
        assert!(clean_note(&"x".repeat(4001)).is_err());
    }
}
