//! Which lead field each column of an import fills: the choices, the suggestion made from the
//! header names, and the check of a mapping someone chose.

use std::collections::BTreeMap;

use meridian_core::pipeline::PipelineSpec;
use meridian_core::{FieldError, Validation};
use sha2::{Digest, Sha256};

/// The standard lead fields a column can fill, with the labels people see.
pub const STANDARD: [(&str, &str); 16] = [
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("email", "Email"),
    ("phone", "Phone"),
    ("state", "State"),
    ("country", "Country"),
    ("date_of_birth", "Date of birth"),
    ("source", "Source"),
    ("utm_source", "UTM source"),
    ("utm_medium", "UTM medium"),
    ("utm_campaign", "UTM campaign"),
    ("utm_content", "UTM content"),
    ("utm_term", "UTM term"),
    ("meta_ad_id", "Meta ad id"),
    ("meta_form_id", "Meta form id"),
    ("campaign_id", "Campaign id"),
];

/// Header names (letters and digits only, lower-cased) that suggest a standard field, besides the
/// field's own name and label.
const SYNONYMS: [(&str, &[&str]); 8] = [
    (
        "first_name",
        &[
            "first",
            "fname",
            "givenname",
            "forename",
            "name",
            "fullname",
        ],
    ),
    ("last_name", &["last", "lname", "surname", "familyname"]),
    ("email", &["mail", "emailaddress", "email1", "workemail"]),
    (
        "phone",
        &[
            "phonenumber",
            "mobile",
            "mobilephone",
            "mobilenumber",
            "cell",
            "cellphone",
            "telephone",
            "tel",
            "phone1",
        ],
    ),
    (
        "state",
        &["province", "stateprovince", "region", "stateorprovince"],
    ),
    ("country", &["countrycode", "nation"]),
    ("date_of_birth", &["dob", "birthday", "birthdate", "born"]),
    ("source", &["leadsource", "origin"]),
];

/// Where a column's values go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A standard field, by name (one of [`STANDARD`]).
    Field(&'static str),
    /// A custom field of the pipeline, by key.
    Custom(String),
}

impl Target {
    /// The name used on the wire and in field errors: `email`, `custom_fields.budget`.
    pub fn name(&self) -> String {
        match self {
            Target::Field(name) => (*name).to_owned(),
            Target::Custom(key) => format!("custom_fields.{key}"),
        }
    }

    fn parse(value: &str, spec: &PipelineSpec) -> Option<Target> {
        if let Some(key) = value.strip_prefix("custom_fields.") {
            return spec
                .fields
                .iter()
                .find(|f| f.key == key)
                .map(|f| Target::Custom(f.key.clone()));
        }
        STANDARD
            .iter()
            .find(|(name, _)| *name == value)
            .map(|(name, _)| Target::Field(name))
    }
}

/// A checked mapping: the target of each column, by column position.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub targets: Vec<Option<Target>>,
}

impl Mapping {
    /// The column that fills a field (by its wire name), for error reports.
    pub fn column_of(&self, field: &str) -> Option<usize> {
        self.targets
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| t.name() == field))
    }

    /// As stored and sent: `{column: target or null}` for every column.
    pub fn to_map(&self, columns: &[String]) -> BTreeMap<String, Option<String>> {
        columns
            .iter()
            .zip(&self.targets)
            .map(|(c, t)| (c.clone(), t.as_ref().map(Target::name)))
            .collect()
    }
}

/// Every target a column may have in `spec`'s pipeline, as (value, label).
pub fn choices(spec: &PipelineSpec) -> Vec<(String, String)> {
    STANDARD
        .iter()
        .map(|(name, label)| ((*name).to_owned(), (*label).to_owned()))
        .chain(
            spec.fields
                .iter()
                .map(|f| (format!("custom_fields.{}", f.key), f.label.clone())),
        )
        .collect()
}

fn squash(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .flat_map(|c| c.to_lowercase())
        .collect()
}

/// Guesses a target for each column from its name; each target is suggested once, to the first
/// column that fits.
pub fn suggest(columns: &[String], spec: &PipelineSpec) -> Mapping {
    let mut known: Vec<(String, Target)> = Vec::new();
    for (name, label) in STANDARD {
        known.push((squash(name), Target::Field(name)));
        known.push((squash(label), Target::Field(name)));
    }
    for (name, words) in SYNONYMS {
        for word in words {
            known.push(((*word).to_owned(), Target::Field(name)));
        }
    }
    for field in &spec.fields {
        known.push((squash(&field.key), Target::Custom(field.key.clone())));
        known.push((squash(&field.label), Target::Custom(field.key.clone())));
    }
    let mut used: Vec<Target> = Vec::new();
    let targets = columns
        .iter()
        .map(|column| {
            let squashed = squash(column);
            let target = known
                .iter()
                .find(|(word, target)| *word == squashed && !used.contains(target))
                .map(|(_, target)| target.clone());
            if let Some(target) = &target {
                used.push(target.clone());
            }
            target
        })
        .collect();
    Mapping { targets }
}

/// Checks a mapping sent by a client against the file's columns and the pipeline: every column
/// named must exist, every target must be a field of the pipeline and used once, and the fields
/// every new lead needs (first name, required custom fields) must be filled by some column.
pub fn check(
    sent: &BTreeMap<String, Option<String>>,
    columns: &[String],
    spec: &PipelineSpec,
) -> Result<Mapping, Vec<FieldError>> {
    let mut v = Validation::new();
    let mut targets: Vec<Option<Target>> = vec![None; columns.len()];
    for (column, target) in sent {
        let field = format!("mapping.{column}");
        let Some(index) = columns.iter().position(|c| c == column) else {
            v.add(&field, "is not a column of the file");
            continue;
        };
        let Some(value) = target.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
            continue;
        };
        match Target::parse(value, spec) {
            Some(target) => targets[index] = Some(target),
            None => v.add(
                &field,
                format!(
                    "{value:?} is not a lead field of this pipeline (use a standard field, custom_fields.<key> or null)"
                ),
            ),
        }
    }
    for (i, target) in targets.iter().enumerate() {
        let Some(target) = target else { continue };
        if targets[..i].contains(&Some(target.clone())) {
            let names: Vec<&str> = columns
                .iter()
                .zip(&targets)
                .filter(|(_, t)| t.as_ref() == Some(target))
                .map(|(c, _)| c.as_str())
                .collect();
            v.add(
                "mapping",
                format!(
                    "{} is filled by more than one column ({}); map only one",
                    target.name(),
                    names.join(", ")
                ),
            );
        }
    }
    let mapping = Mapping { targets };
    if mapping.column_of("first_name").is_none() {
        v.add(
            "mapping",
            "map a column to first_name: every new lead needs a first name",
        );
    }
    for field in spec.fields.iter().filter(|f| f.required) {
        let name = format!("custom_fields.{}", field.key);
        if mapping.column_of(&name).is_none() {
            v.add(
                "mapping",
                format!(
                    "map a column to {name}: \u{201c}{}\u{201d} is required in this pipeline",
                    field.label
                ),
            );
        }
    }
    v.finish().map(|()| mapping)
}

/// Identifies a header row for saved mappings.
pub fn headers_key(columns: &[String]) -> String {
    let json = serde_json::to_string(columns).unwrap_or_default();
    hex::encode(Sha256::digest(json.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::pipeline::default_leads_pipeline;

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn suggests_from_names_labels_and_synonyms() {
        let spec = default_leads_pipeline();
        let cols = columns(&[
            "E-mail",
            "First Name",
            "Surname",
            "Mobile",
            "Notes",
            "Email",
        ]);
        let mapping = suggest(&cols, &spec);
        let names: Vec<Option<String>> = mapping
            .targets
            .iter()
            .map(|t| t.as_ref().map(Target::name))
            .collect();
        assert_eq!(
            names,
            vec![
                Some("email".to_owned()),
                Some("first_name".to_owned()),
                Some("last_name".to_owned()),
                Some("phone".to_owned()),
                None,
                None
            ]
        );
    }

    #[test]
    fn checks_columns_targets_and_required_fields() {
        let spec = default_leads_pipeline();
        let cols = columns(&["a", "b", "c"]);
        let sent: BTreeMap<String, Option<String>> = [
            ("a".to_owned(), Some("email".to_owned())),
            ("b".to_owned(), Some("email".to_owned())),
            ("c".to_owned(), Some("shoe_size".to_owned())),
            ("zz".to_owned(), None),
        ]
        .into_iter()
        .collect();
        let errors = check(&sent, &cols, &spec).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["mapping.c", "mapping.zz", "mapping", "mapping"]
        );
        assert!(errors[2].message.contains("(a, b)"));
    }
}
