//! Rendering templates: `{{lead.first_name}}`-style variables in a sandboxed engine (minijinja:
//! no file, network or code access; fuel bounds a runaway loop), HTML escaped by default and
//! sanitized after rendering, a plain-text part derived when a template has none.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::Serialize;

/// Instructions one render may spend: plenty for any real email, and a loop of a million
/// iterations stops instead of holding a worker.
const FUEL: u64 = 200_000;

/// The variables a template sees.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Variables {
    pub lead: LeadVars,
    /// The lead's assignee (empty when nobody is assigned).
    pub owner: Person,
    /// Who sends it (empty for automated mail).
    pub sender: Person,
    pub org: OrgVars,
    /// The recipient's unsubscribe page.
    pub unsubscribe_url: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LeadVars {
    /// Displayed form, `00042`.
    pub number: String,
    pub first_name: String,
    pub last_name: String,
    pub full_name: String,
    pub email: String,
    pub phone: String,
    pub state: String,
    pub country: String,
    pub source: String,
    pub stage: String,
    pub stage_label: String,
    pub pipeline: String,
    /// By field key; values as the lead holds them.
    pub custom_fields: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Person {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OrgVars {
    pub name: String,
}

/// The three parts of an email, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// A template's sources.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub subject: &'a str,
    pub html: &'a str,
    /// Empty: derived from the HTML.
    pub text: &'a str,
}

/// A part that did not render: which one (`subject`, `body_html`, `body_text`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RenderError {
    pub field: &'static str,
    pub message: String,
}

fn environment(html: bool, strict: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(50);
    env.set_undefined_behavior(if strict {
        UndefinedBehavior::SemiStrict
    } else {
        UndefinedBehavior::Chainable
    });
    let escape = if html {
        AutoEscape::Html
    } else {
        AutoEscape::None
    };
    env.set_auto_escape_callback(move |_| escape.clone());
    env
}

static HTML: LazyLock<Environment<'static>> = LazyLock::new(|| environment(true, false));
static PLAIN: LazyLock<Environment<'static>> = LazyLock::new(|| environment(false, false));
static HTML_STRICT: LazyLock<Environment<'static>> = LazyLock::new(|| environment(true, true));
static PLAIN_STRICT: LazyLock<Environment<'static>> = LazyLock::new(|| environment(false, true));

fn describe(error: &minijinja::Error) -> String {
    let what = match error.kind() {
        minijinja::ErrorKind::UndefinedError => {
            "uses a variable that does not exist (see the list of variables)".to_owned()
        }
        minijinja::ErrorKind::OutOfFuel => {
            "does too much work to render (a loop too long?)".to_owned()
        }
        _ => error
            .detail()
            .map_or_else(|| error.kind().to_string(), str::to_owned),
    };
    match error.line() {
        Some(line) => format!("line {line}: {what}"),
        None => what,
    }
}

fn render_part(
    env: &Environment<'static>,
    field: &'static str,
    source: &str,
    vars: &Value,
) -> Result<String, RenderError> {
    env.render_str(source, vars.clone())
        .map_err(|e| RenderError {
            field,
            message: describe(&e),
        })
}

/// Renders for sending: a variable the lead lacks renders empty.
pub fn render(sources: Sources<'_>, vars: &Variables) -> Result<Rendered, RenderError> {
    render_with(sources, vars, &HTML, &PLAIN)
}

/// Checks a template before it is saved: it must parse, and every variable it prints must exist
/// (rendered against `sample`, which has every variable), so a typo like `{{lead.frist_name}}` is
/// refused with its line instead of sending blanks.
pub fn check(sources: Sources<'_>, sample: &Variables) -> Result<Rendered, Vec<RenderError>> {
    let value = Value::from(Serde(sample));
    let errors: Vec<RenderError> = [
        ("subject", sources.subject, &*PLAIN_STRICT),
        ("body_html", sources.html, &*HTML_STRICT),
        ("body_text", sources.text, &*PLAIN_STRICT),
    ]
    .into_iter()
    .filter_map(|(field, source, env)| render_part(env, field, source, &value).err())
    .collect();
    if errors.is_empty() {
        render(sources, sample).map_err(|e| vec![e])
    } else {
        Err(errors)
    }
}

fn render_with(
    sources: Sources<'_>,
    vars: &Variables,
    html_env: &Environment<'static>,
    plain_env: &Environment<'static>,
) -> Result<Rendered, RenderError> {
    let value = Value::from(Serde(vars));
    let subject = render_part(plain_env, "subject", sources.subject, &value)?;
    let html = sanitize(&render_part(html_env, "body_html", sources.html, &value)?);
    let text = if sources.text.trim().is_empty() {
        text_from_html(&html)
    } else {
        render_part(plain_env, "body_text", sources.text, &value)?
    };
    Ok(Rendered {
        subject: one_line(&subject),
        html,
        text,
    })
}

/// A subject is one line: line breaks in a template or a variable become spaces.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut builder = ammonia::Builder::default();
    // Email HTML is laid out with tables and inline styles; none of these attributes can run code.
    builder.add_generic_attributes([
        "style",
        "align",
        "valign",
        "width",
        "height",
        "bgcolor",
        "border",
        "cellpadding",
        "cellspacing",
        "color",
    ]);
    builder
});

/// Removes what could run code or load from where it should not (scripts, event handlers,
/// `javascript:` links, forms, iframes), keeping the layout markup email uses.
pub fn sanitize(html: &str) -> String {
    SANITIZER.clean(html).to_string()
}

/// A plain-text version of sanitized HTML: blocks and breaks become line breaks, links keep their
/// address, tags go, entities are decoded.
pub fn text_from_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut link: Option<String> = None;
    while let Some(start) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..start]));
        let Some(end) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = &rest[start + 1..start + end];
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let closing = tag.starts_with('/');
        match name.as_str() {
            "br" => out.push('\n'),
            "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "tr" | "table" | "ul"
            | "ol" | "blockquote"
                if closing && !out.ends_with("\n\n") =>
            {
                out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
            }
            "li" if !closing => out.push_str("- "),
            "li" => out.push('\n'),
            "a" if !closing => link = attribute(tag, "href"),
            "a" => {
                if let Some(href) = link.take()
                    && !href.is_empty()
                    && !out.ends_with(&href)
                {
                    out.push_str(&format!(" ({href})"));
                }
            }
            _ => {}
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(&decode_entities(rest));
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    let mut text = lines.join("\n");
    while text.contains("\n\n\n") {
        text = text.replace("\n\n\n", "\n\n");
    }
    text.trim().to_owned()
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!("{name}=\""))?;
    let value = &tag[at + name.len() + 2..];
    let end = value.find('"')?;
    Some(decode_entities(&value[..end]))
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        Variables {
            lead: LeadVars {
                first_name: "Ana".into(),
                last_name: "<Diaz>".into(),
                custom_fields: [("budget".to_owned(), serde_json::json!(5000))]
                    .into_iter()
                    .collect(),
                ..LeadVars::default()
            },
            org: OrgVars {
                name: "Acme & Co".into(),
            },
            ..Variables::default()
        }
    }

    #[test]
    fn variables_render_and_html_is_escaped() {
        let out = render(
            Sources {
                subject: "Hi {{lead.first_name}}\n from {{ org.name }}",
                html: "<p>Dear {{lead.first_name}} {{lead.last_name}}, budget {{lead.custom_fields.budget}}</p>",
                text: "",
            },
            &vars(),
        )
        .expect("renders");
        assert_eq!(out.subject, "Hi Ana from Acme & Co");
        assert_eq!(out.html, "<p>Dear Ana &lt;Diaz&gt;, budget 5000</p>");
        assert_eq!(out.text, "Dear Ana <Diaz>, budget 5000");
    }

    #[test]
    fn scripts_and_handlers_are_removed() {
        let out = render(
            Sources {
                subject: "x",
                html: "<p style=\"color:red\" onclick=\"x()\">Hi</p><script>alert(1)</script><a href=\"javascript:alert(1)\">y</a>",
                text: "plain",
            },
            &vars(),
        )
        .expect("renders");
        assert!(!out.html.contains("script"), "{}", out.html);
        assert!(!out.html.contains("onclick"), "{}", out.html);
        assert!(!out.html.contains("javascript"), "{}", out.html);
        assert!(out.html.contains("style=\"color:red\""), "{}", out.html);
        assert_eq!(out.text, "plain");
    }

    #[test]
    fn check_names_the_part_and_line_of_an_unknown_variable() {
        let errors = check(
            Sources {
                subject: "ok {{lead.first_name}}",
                html: "<p>line one</p>\n<p>{{lead.frist_name}}</p>",
                text: "{% for x in %}",
            },
            &vars(),
        )
        .expect_err("fails");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].field, "body_html");
        assert!(errors[0].message.starts_with("line 2"), "{errors:?}");
        assert_eq!(errors[1].field, "body_text");
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let error = render(
            Sources {
                subject: "x",
                html: "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}",
                text: "",
            },
            &vars(),
        )
        .expect_err("fails");
        assert_eq!(error.field, "body_html");
        assert!(error.message.contains("too much work"), "{error}");
    }

    #[test]
    fn text_from_html_keeps_structure_and_links() {
        let text = text_from_html(
            "<h1>Welcome</h1><p>Hello &amp; welcome,<br>friend</p><ul><li>one</li><li>two</li></ul><p><a href=\"https://x.test/a?b=1&amp;c=2\">Read</a></p>",
        );
        assert_eq!(
            text,
            "Welcome\n\nHello & welcome,\nfriend\n\n- one\n- two\n\nRead (https://x.test/a?b=1&c=2)"
        );
    }
}
