//! Search words: how record text and search queries are cut into the words full-text search
//! matches. Both engines index the same normalized text (SQLite FTS5, PostgreSQL `simple`
//! tsvector), so a query finds the same records on either.
//!
//! Text is lower-cased, accents are folded (`José` finds `jose`), and anything that is not a
//! letter or digit separates words, so emails and URLs split into their parts; a run of letters
//! and a run of digits are separate words too (`garcia87` is `garcia` and `87`), so one person's
//! address does not add a one-off word that every prefix search would have to expand. A query
//! matches a record when each of its words is the start of one of the record's words.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Trailing runs of phone digits indexed as words of their own: the last 4 ("0123"), the local
/// number (7), the national number (10), and the whole number. A query of the last 5 or 6
/// digits is a prefix of the 7-digit word, so it is found too.
pub const PHONE_SUFFIXES: [usize; 3] = [4, 7, 10];

/// The words of `text`, normalized.
pub fn words(text: &str) -> Vec<String> {
    let folded: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let mut digits = false;
    for c in folded.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            continue;
        }
        let is_digit = c.is_numeric();
        if !word.is_empty() && is_digit != digits {
            out.push(std::mem::take(&mut word));
        }
        digits = is_digit;
        word.push(c);
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The text stored for indexing: the words of every part, then the phone number's digits and
/// its trailing runs ([`PHONE_SUFFIXES`]), so a number can be found by its end.
pub fn document(parts: &[&str], phone: Option<&str>) -> String {
    let mut out: Vec<String> = parts.iter().flat_map(|p| words(p)).collect();
    if let Some(phone) = phone {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            for length in PHONE_SUFFIXES.into_iter().filter(|&n| n < digits.len()) {
                out.push(digits[digits.len() - length..].to_owned());
            }
            out.push(digits);
        }
    }
    out.join(" ")
}

/// The words of a search query (the same normalization as [`document`]).
pub fn query_words(query: &str) -> Vec<String> {
    words(query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(
            words("José O'Connor-Díaz"),
            vec!["jose", "o", "connor", "diaz"]
        );
        assert_eq!(
            words("ada.lovelace@example.com"),
            vec!["ada", "lovelace", "example", "com"]
        );
        assert_eq!(
            words("maria.garcia87@mail2.com"),
            vec!["maria", "garcia", "87", "mail", "2", "com"]
        );
        assert_eq!(words("  "), Vec::<String>::new());
    }

    #[test]
    fn phones_are_found_by_their_end() {
        let doc = document(&["Ada"], Some("+14155550123"));
        assert_eq!(doc, "ada 0123 5550123 4155550123 14155550123");
        assert_eq!(document(&[], Some("+1")), "1");
        assert_eq!(document(&[], Some("")), "");
    }

    proptest! {
        #[test]
        fn every_word_of_a_document_finds_it(text in "\\PC{0,60}", cut in 1usize..8) {
            let doc = document(&[&text], None);
            let doc_words: Vec<&str> = doc.split(' ').filter(|w| !w.is_empty()).collect();
            for word in words(&text) {
                let prefix: String = word.chars().take(cut).collect();
                let query = query_words(&prefix);
                // The prefix normalizes to itself and starts some word of the document.
                prop_assert!(query.iter().all(|q| doc_words.iter().any(|d| d.starts_with(q.as_str()))));
            }
        }

        #[test]
        fn documents_are_plain_words(text in "\\PC{0,80}") {
            let doc = document(&[&text], Some(&text));
            prop_assert!(doc.split(' ').all(|w| w.chars().all(char::is_alphanumeric)));
        }
    }
}
