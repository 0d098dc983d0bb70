//! Contact fields of CRM leads: phone numbers, countries, and states or provinces.
//!
//! Leads come from web forms, spreadsheets and ad platforms, typed by people in every format.
//! Each function returns the one canonical form that storage, search and de-duplication rely on,
//! or a message fragment that follows the field name ("Phone is not a valid phone number for
//! US"), as [`crate::email`] does. None of them guesses: input that could mean two things is
//! refused with a message rather than resolved silently, because a wrong state or country code on
//! a lead is worse than asking the person who typed it.
//!
//! Emptiness is the caller's business (a field may be optional); here an empty value is only
//! reported as "is empty" so that it is never stored as if it had been normalized.
//!
//! Data: phone rules come from `phonenumber`, a port of Google's libphonenumber with its metadata
//! compiled in; country and subdivision codes and names come from `rust_iso3166`, which follows
//! ISO 3166-1 and ISO 3166-2 as published in Debian's iso-codes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, LazyLock, RwLock};

use phonenumber::country::Id as PhoneRegion;
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use phonenumber::{Mode, PhoneNumber};
use regex::{Regex, RegexBuilder};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest phone input accepted, counted in characters. E.164 numbers have at most 15 digits; 40
/// leaves room for any amount of human formatting while refusing pasted paragraphs.
pub const MAX_PHONE_LENGTH: usize = 40;

/// Longest free-text subdivision accepted for a country that has no subdivision data.
pub const MAX_FREE_SUBDIVISION_LENGTH: usize = 100;

/// Normalizes a phone number to E.164 (`+14155550123`), or says why it is not one.
///
/// `default_region` (an ISO 3166-1 code or anything [`normalize_country`] accepts) says how to read
/// a number written without `+`, as it would be dialled in that country; a number with `+` is read
/// on its own. The number must be valid by libphonenumber's rules, not merely shaped like one.
pub fn normalize_phone(input: &str, default_region: &str) -> Result<String, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("is empty".to_owned());
    }
    if text.chars().count() > MAX_PHONE_LENGTH {
        return Err("is too long".to_owned());
    }
    // Letters and `#`, `;`, `,` would let the parser read an extension ("x12", ";ext=12"), a pause
    // or a vanity number, none of which E.164 can hold: they would be dropped without a word. So
    // only digits and the separators people put between them get through.
    if !text.chars().all(is_phone_char) {
        return Err("may contain only digits, spaces and + ( ) - . /".to_owned());
    }
    if text.chars().skip(1).any(|c| c == '+') {
        return Err("may contain + only at the start".to_owned());
    }
    let (region, invalid) = if text.starts_with('+') {
        (None, "is not a valid phone number".to_owned())
    } else {
        // A region that is unknown, or that libphonenumber has no rules for (Antarctica, Bouvet
        // Island...), cannot tell us how the number is dialled; asking for the country code beats
        // picking some other region's rules.
        let Some((code, region)) = normalize_country(default_region).ok().and_then(|code| {
            code.parse::<PhoneRegion>()
                .ok()
                .map(|region| (code, region))
        }) else {
            return Err("must start with + and the country code".to_owned());
        };
        (
            Some(region),
            format!("is not a valid phone number for {code}"),
        )
    };
    match north_american(text, region) {
        Some(e164) => Ok(e164),
        None => parsed_phone(text, region, invalid),
    }
}

/// A valid North American number (country code 1), read without the parser, or `None` when the
/// parser has to decide (including every number this finds invalid, so that the parser's answer
/// stands for those).
///
/// Most leads of an agency in the US, Canada or the Caribbean have these, and the parser, with the
/// read-back below, costs about 6 µs a number against under 2 µs here: a third of a million-row
/// import's preparation. The reading is the parser's for these inputs: ten digits whose first is
/// 2–9, with the trunk prefix `1` in front or `+1` (NANP national numbers never start with 0 or
/// 1, so there is no other prefix to strip and nothing for a read-back to catch). A property test
/// holds both paths to the same answer wherever the parser reads a number (it refuses a few
/// spacings, such as "+1301-2000000", that read here as their digits say).
fn north_american(text: &str, region: Option<PhoneRegion>) -> Option<String> {
    let mut digits = [0_u8; 11];
    let mut len = 0;
    for c in text.bytes().filter(u8::is_ascii_digit) {
        *digits.get_mut(len)? = c;
        len += 1;
    }
    let national = match (region, &digits[..len]) {
        (None, [b'1', rest @ ..]) => rest,
        (Some(region), all) if DATABASE.by_id(region.as_ref())?.country_code() == 1 => match all {
            [b'1', rest @ ..] => rest,
            all => all,
        },
        _ => return None,
    };
    if national.len() != 10 || !matches!(national.first(), Some(b'2'..=b'9')) {
        return None;
    }
    let national = std::str::from_utf8(national).ok()?;
    is_valid_national(1, national).then(|| format!("+1{national}"))
}

/// [`normalize_phone`] by libphonenumber's parser, for every number [`north_american`] leaves.
fn parsed_phone(
    text: &str,
    region: Option<PhoneRegion>,
    invalid: String,
) -> Result<String, String> {
    let number = phonenumber::parse(region, text).map_err(|_| invalid.clone())?;
    if !is_valid_phone(&number) {
        return Err(invalid);
    }
    let e164 = number.format().mode(Mode::E164).to_string();
    // The parser can take leading digits for a trunk prefix and drop them even after a country
    // code ("+7 888 770 000 0000" came out as "+7 877 000 0000"). What is stored must be the
    // number itself, so the result has to read back, on its own, as the same valid number.
    let reads_back = phonenumber::parse(None, &e164).is_ok_and(|again| {
        is_valid_phone(&again) && again.format().mode(Mode::E164).to_string() == e164
    });
    if reads_back { Ok(e164) } else { Err(invalid) }
}

/// `phonenumber::is_valid`, answered with our own compiled copies of the metadata's patterns.
///
/// The crate matches every pattern through one regex cache shared by all threads behind a mutex,
/// keyed by the pattern's text (hashed on every use; some patterns are thousands of characters),
/// which made a validity check cost 20 µs and serialized imports on one core. The logic is the
/// crate's (`validator::source_for` then `number_type(…) != Unknown`); a property test holds the
/// two answers equal.
fn is_valid_phone(number: &PhoneNumber) -> bool {
    is_valid_national(number.country().code(), &number.national().to_string())
}

/// [`is_valid_phone`] of the number with country code `code` and national number `national`.
fn is_valid_national(code: u16, national: &str) -> bool {
    let Some(regions) = DATABASE.region(&code) else {
        return false;
    };
    let source = if let [only] = regions.as_slice() {
        if *only == "001" {
            DATABASE
                .by_code(&code)
                .and_then(|all| all.into_iter().next())
        } else {
            only.parse::<PhoneRegion>()
                .ok()
                .and_then(|_| DATABASE.by_id(*only))
        }
    } else {
        regions.iter().find_map(|region| {
            let meta = DATABASE.by_id(*region)?;
            let patterns = PhonePatterns::of(meta)?;
            let matches = match &patterns.leading_digits {
                Some(leading) => leading.find(national).is_some_and(|m| m.start() == 0),
                None => patterns.is_valid(national),
            };
            matches.then_some(meta)
        })
    };
    source
        .and_then(PhonePatterns::of)
        .is_some_and(|patterns| patterns.is_valid(national))
}

/// One descriptor (general, fixed line, mobile, …): the possible lengths and the number pattern.
struct CompiledDescriptor {
    lengths: Vec<u16>,
    pattern: Regex,
}

impl CompiledDescriptor {
    fn new(descriptor: &Descriptor) -> Option<CompiledDescriptor> {
        Some(CompiledDescriptor {
            lengths: descriptor.possible_length().to_vec(),
            pattern: compile(descriptor.national_number().as_str())?,
        })
    }

    /// `Descriptor::is_match`: a possible length, and the pattern matches from the start.
    fn is_match(&self, national: &str) -> bool {
        let length = u16::try_from(national.len()).unwrap_or(u16::MAX);
        (self.lengths.is_empty() || self.lengths.contains(&length))
            && self.pattern.find(national).is_some_and(|m| m.start() == 0)
    }
}

/// A region's patterns, compiled once per region on first use.
struct PhonePatterns {
    leading_digits: Option<Regex>,
    general: CompiledDescriptor,
    /// Every numbering type `number_type` tries; a number is valid when one of them matches.
    types: Vec<CompiledDescriptor>,
}

/// Compiled patterns by country code and region id (the non-geographic entries share the id
/// "001"); `None` for a region whose patterns did not compile.
type PatternsByRegion = HashMap<(u16, &'static str), Option<Arc<PhonePatterns>>>;

static PHONE_PATTERNS: LazyLock<RwLock<PatternsByRegion>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

fn compile(source: &str) -> Option<Regex> {
    RegexBuilder::new(source)
        .ignore_whitespace(true)
        .build()
        .ok()
}

impl PhonePatterns {
    fn of(meta: &'static Metadata) -> Option<Arc<PhonePatterns>> {
        let key = (meta.country_code(), meta.id());
        if let Ok(known) = PHONE_PATTERNS.read()
            && let Some(patterns) = known.get(&key)
        {
            return patterns.clone();
        }
        let compiled = PhonePatterns::compile(meta).map(Arc::new);
        if let Ok(mut known) = PHONE_PATTERNS.write() {
            known.insert(key, compiled.clone());
        }
        compiled
    }

    fn compile(meta: &Metadata) -> Option<PhonePatterns> {
        let d = meta.descriptors();
        let types = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ]
        .into_iter()
        .flatten()
        .map(CompiledDescriptor::new)
        .collect::<Option<Vec<_>>>()?;
        Some(PhonePatterns {
            leading_digits: match meta.leading_digits() {
                Some(leading) => Some(compile(leading.as_str())?),
                None => None,
            },
            general: CompiledDescriptor::new(d.general())?,
            types,
        })
    }

    /// `number_type(…) != Type::Unknown`.
    fn is_valid(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

fn is_phone_char(c: char) -> bool {
    // U+2010..U+2015 are the hyphens and dashes that word processors substitute for `-`.
    c.is_ascii_digit()
        || c.is_whitespace()
        || matches!(
            c,
            '+' | '(' | ')' | '-' | '.' | '/' | '\u{2010}'..='\u{2015}'
        )
}

/// Normalizes a country to its ISO 3166-1 alpha-2 code (`US`), from that code, the alpha-3 code
/// (`USA`), the ISO English name or a common English name (`United States`, `UK`).
pub fn normalize_country(input: &str) -> Result<String, String> {
    match COUNTRIES.find(input)? {
        Some(Hit::One(code)) => Ok(code.to_owned()),
        Some(Hit::Many) => Err("matches more than one country; use its two-letter code".to_owned()),
        None => Err("is not a known country".to_owned()),
    }
}

/// Normalizes a state, province or other subdivision of `country` to the subdivision part of its
/// ISO 3166-2 code: `California`, `ca`, `US-CA` all give `CA`; `Ontario` in Canada gives `ON`.
///
/// `country` is anything [`normalize_country`] accepts. For a country that ISO 3166-2 lists no
/// subdivisions for (Puerto Rico, Monaco, Antarctica...) there is nothing to check against, and a
/// lead's address there may still name a district, so the trimmed text is kept as typed, up to
/// [`MAX_FREE_SUBDIVISION_LENGTH`] characters.
pub fn normalize_subdivision(input: &str, country: &str) -> Result<String, String> {
    // Without a country, "CA" could be California or Canada's code: refuse rather than pick.
    let country = normalize_country(country)
        .map_err(|_| "cannot be checked without a known country".to_owned())?;
    let Some(index) = SUBDIVISIONS.get(country.as_str()) else {
        return free_subdivision(input);
    };
    match index.find(input)? {
        Some(Hit::One(code)) => Ok(code.to_owned()),
        Some(Hit::Many) => Err(format!(
            "matches more than one state or province of {country}; use its code"
        )),
        None => Err(format!("is not a state or province of {country}")),
    }
}

fn free_subdivision(input: &str) -> Result<String, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("is empty".to_owned());
    }
    if text.chars().count() > MAX_FREE_SUBDIVISION_LENGTH {
        return Err("is too long".to_owned());
    }
    // Nothing else is checked, but control characters are never part of a place name and the
    // database refuses NUL.
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(text.to_owned())
}

/// English names in common use that ISO does not give, for the countries leads most often name.
/// "England" and its siblings name part of GB, so GB is right for them, not a guess.
const COUNTRY_ALIASES: &[(&str, &str)] = &[
    ("United States", "US"),
    ("United Kingdom", "GB"),
    ("UK", "GB"),
    ("Great Britain", "GB"),
    ("Britain", "GB"),
    ("England", "GB"),
    ("Scotland", "GB"),
    ("Wales", "GB"),
    ("Northern Ireland", "GB"),
    ("South Korea", "KR"),
    ("Republic of Korea", "KR"),
    ("North Korea", "KP"),
    ("Russia", "RU"),
    ("Vietnam", "VN"),
    ("Laos", "LA"),
    ("Syria", "SY"),
    ("Turkey", "TR"),
    ("Czech Republic", "CZ"),
    ("Ivory Coast", "CI"),
    ("Cape Verde", "CV"),
    ("Swaziland", "SZ"),
    ("Burma", "MM"),
    ("Macedonia", "MK"),
    ("Brunei", "BN"),
    ("Vatican", "VA"),
    ("Vatican City", "VA"),
    ("East Timor", "TL"),
    ("Macau", "MO"),
    ("Holland", "NL"),
    ("The Netherlands", "NL"),
    ("The Bahamas", "BS"),
    ("The Gambia", "GM"),
    ("UAE", "AE"),
    ("US Virgin Islands", "VI"),
    ("British Virgin Islands", "VG"),
    ("Democratic Republic of the Congo", "CD"),
    ("DR Congo", "CD"),
    ("Republic of the Congo", "CG"),
    ("Saint Helena", "SH"),
];

/// Names in common use for subdivisions whose ISO name differs, keyed by country. ("U.S. Virgin
/// Islands" needs no entry: it is derived from the ISO "Virgin Islands, U.S.")
const SUBDIVISION_ALIASES: &[(&str, &str, &str)] = &[
    ("US", "Washington DC", "DC"),
    ("MX", "Mexico City", "CMX"),
    ("MX", "CDMX", "CMX"),
    ("MX", "Estado de México", "MEX"),
];

/// Names that would otherwise resolve to one subdivision but usually mean a wider area: "London"
/// would match GB-LND, the City of London, while people mean Greater London, which ISO 3166-2
/// splits into that and 32 boroughs. They are refused as ambiguous.
const AMBIGUOUS_SUBDIVISION_NAMES: &[(&str, &str)] = &[("GB", "London"), ("GB", "Greater London")];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hit {
    One(&'static str),
    /// Two entries of the same rank share this key; answering either would be a guess.
    Many,
}

/// Lookup keys for one set of names, each folded by [`fold`] and ranked: a code beats an official
/// name, which beats a name derived from it, so "Madrid" is the province whose ISO name that is,
/// not the community whose ISO name ("Madrid, Comunidad de") merely starts with it.
#[derive(Default)]
struct Index(HashMap<String, (Rank, Hit)>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Code,
    Name,
    Derived,
}

impl Index {
    fn insert(&mut self, rank: Rank, text: &str, code: &'static str) {
        self.insert_hit(rank, text, Hit::One(code));
    }

    fn insert_hit(&mut self, rank: Rank, text: &str, hit: Hit) {
        match self.0.entry(fold(text)) {
            Entry::Vacant(slot) => {
                slot.insert((rank, hit));
            }
            Entry::Occupied(mut slot) => {
                let (held_rank, held) = *slot.get();
                if rank < held_rank {
                    slot.insert((rank, hit));
                } else if rank == held_rank && held != hit {
                    slot.insert((rank, Hit::Many));
                }
            }
        }
    }

    fn insert_name(&mut self, name: &str, code: &'static str) {
        self.insert(Rank::Name, name, code);
        for derived in derived_names(name) {
            self.insert(Rank::Derived, &derived, code);
        }
    }

    /// `Ok(None)` when nothing matches; `Err` only for empty input.
    fn find(&self, input: &str) -> Result<Option<Hit>, String> {
        let key = fold(input);
        if key.is_empty() {
            return Err("is empty".to_owned());
        }
        Ok(self.0.get(&key).map(|&(_, hit)| hit))
    }
}

/// The other forms people write for an ISO name: without its parenthesised qualifier ("Bolivia
/// (Plurinational State of)"), with an inverted qualifier dropped or put back in front
/// ("Edinburgh, City of": "Edinburgh", "City of Edinburgh"), and with "St" for "Saint". A comma
/// followed by "and" or "y" joins places ("Newry, Mourne and Down") rather than inverting a
/// qualifier, so nothing is derived from it.
fn derived_names(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(open), Some(close)) = (name.find('('), name.rfind(')'))
        && open < close
    {
        out.push(format!("{} {}", &name[..open], &name[close + 1..]));
    }
    if let Some((head, tail)) = name.split_once(", ")
        && !tail
            .split_whitespace()
            .any(|word| word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("y"))
    {
        out.push(head.to_owned());
        out.push(format!("{tail} {head}"));
    }
    let with_st: Vec<String> = std::iter::once(name)
        .chain(out.iter().map(String::as_str))
        .filter_map(|n| n.strip_prefix("Saint ").map(|rest| format!("St {rest}")))
        .collect();
    out.extend(with_st);
    out
}

/// The form names are compared in: lower case, accents and dots removed, `&` read as "and",
/// hyphens and commas read as spaces, runs of space collapsed. Typing differences that cannot
/// change which place is meant disappear; everything else still has to match.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfd().flat_map(char::to_lowercase) {
        match c {
            '.' => {}
            c if is_combining_mark(c) => {}
            // Letters with a stroke or ligatures have no decomposition to strip.
            'ł' => out.push('l'),
            'ø' => out.push('o'),
            'đ' => out.push('d'),
            'ħ' => out.push('h'),
            'ı' => out.push('i'),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            'ß' => out.push_str("ss"),
            '\u{2018}' | '\u{2019}' | '`' => out.push('\''),
            '&' => out.push_str(" and "),
            '-' | '_' | ',' | '\u{2010}'..='\u{2015}' => out.push(' '),
            c => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

static COUNTRIES: LazyLock<Index> = LazyLock::new(|| {
    let mut index = Index::default();
    for country in rust_iso3166::ALL {
        index.insert(Rank::Code, country.alpha2, country.alpha2);
        index.insert(Rank::Code, country.alpha3, country.alpha2);
    }
    for country in rust_iso3166::ALL {
        index.insert_name(country.name, country.alpha2);
    }
    for &(alias, code) in COUNTRY_ALIASES {
        index.insert_name(alias, code);
    }
    index
});

/// One index per country that ISO 3166-2 lists subdivisions for, keyed by alpha-2 code.
static SUBDIVISIONS: LazyLock<HashMap<&'static str, Index>> = LazyLock::new(|| {
    let mut by_country: HashMap<&'static str, Index> = HashMap::new();
    for (&country, &subdivisions) in rust_iso3166::iso3166_2::SUBDIVISION_COUNTRY_MAP.entries() {
        let index = by_country.entry(country).or_default();
        for sub in subdivisions {
            index.insert(Rank::Code, sub.region_code, sub.region_code);
            index.insert(Rank::Code, sub.code, sub.region_code);
        }
        for sub in subdivisions {
            index.insert_name(sub.name, sub.region_code);
        }
    }
    for &(country, alias, code) in SUBDIVISION_ALIASES {
        by_country
            .entry(country)
            .or_default()
            .insert_name(alias, code);
    }
    for &(country, name) in AMBIGUOUS_SUBDIVISION_NAMES {
        by_country
            .entry(country)
            .or_default()
            .insert_hit(Rank::Name, name, Hit::Many);
    }
    by_country
});

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(value: &str) -> Result<String, String> {
        Ok(value.to_owned())
    }

    fn err(message: &str) -> Result<String, String> {
        Err(message.to_owned())
    }

    fn us_subdivisions() -> &'static [rust_iso3166::iso3166_2::Subdivision] {
        rust_iso3166::US.subdivisions().unwrap_or_default()
    }

    #[test]
    fn phones_become_e164() {
        for (input, region, expected) in [
            ("(415) 555-0123", "US", "+14155550123"),
            ("415.555.0123", "US", "+14155550123"),
            ("  415 555 0123\t", "us", "+14155550123"),
            ("1-415-555-0123", "US", "+14155550123"),
            ("+1 415 555 0123", "GB", "+14155550123"),
            ("+1 (415) 555\u{2013}0123", "", "+14155550123"),
            ("(415) 555-0123", "United States", "+14155550123"),
            ("+44 20 7946 0958", "US", "+442079460958"),
            ("020 7946 0958", "GB", "+442079460958"),
            ("+44 (0)20 7946 0958", "US", "+442079460958"),
            ("011 44 20 7946 0958", "US", "+442079460958"),
            ("001 415 555 0123", "GB", "+14155550123"),
            ("00 44 20 7946 0958", "DE", "+442079460958"),
            ("(416) 555-0199", "CA", "+14165550199"),
            ("02 9374 4000", "AU", "+61293744000"),
            ("+39 06 6988 4000", "US", "+390669884000"),
            ("33 1 42 68 53 00", "FR", "+33142685300"),
        ] {
            assert_eq!(
                normalize_phone(input, region),
                ok(expected),
                "{input:?} in {region}"
            );
        }
    }

    #[test]
    fn common_north_american_numbers_are_read_without_the_parser() {
        for (input, region, expected) in [
            ("(415) 555-0123", Some(PhoneRegion::US), "+14155550123"),
            ("1-415-555-0123", Some(PhoneRegion::US), "+14155550123"),
            ("(416) 555-0199", Some(PhoneRegion::CA), "+14165550199"),
            ("+1 (415) 555\u{2013}0123", None, "+14155550123"),
        ] {
            assert_eq!(
                north_american(input, region).as_deref(),
                Some(expected),
                "{input:?}"
            );
        }
        // Left to the parser: other countries, other lengths, area codes that cannot be one.
        for (input, region) in [
            ("020 7946 0958", Some(PhoneRegion::GB)),
            ("+44 20 7946 0958", None),
            ("011 44 20 7946 0958", Some(PhoneRegion::US)),
            ("415 555 012", Some(PhoneRegion::US)),
            ("(115) 555-0123", Some(PhoneRegion::US)),
            ("1 1 415 555 0123", Some(PhoneRegion::US)),
        ] {
            assert_eq!(north_american(input, region), None, "{input:?}");
        }
    }

    #[test]
    fn phones_that_are_not_numbers_are_refused_with_a_reason() {
        for (input, region, message) in [
            ("", "US", "is empty"),
            ("   ", "US", "is empty"),
            (
                "+1 415 555 0123 0123 0123 0123 0123 0123 0",
                "US",
                "is too long",
            ),
            (
                "415-555-0123 x12",
                "US",
                "may contain only digits, spaces and + ( ) - . /",
            ),
            (
                "1-800-FLOWERS",
                "US",
                "may contain only digits, spaces and + ( ) - . /",
            ),
            (
                "415-555-0123;ext=1",
                "US",
                "may contain only digits, spaces and + ( ) - . /",
            ),
            ("1+415 555 0123", "US", "may contain + only at the start"),
            (
                "(415) 555-0123",
                "",
                "must start with + and the country code",
            ),
            (
                "(415) 555-0123",
                "XX",
                "must start with + and the country code",
            ),
            (
                "(415) 555-0123",
                "AQ",
                "must start with + and the country code",
            ),
            ("555-0123", "US", "is not a valid phone number for US"),
            ("(415) 555-0123", "GB", "is not a valid phone number for GB"),
            (
                "001 415 555 0123",
                "US",
                "is not a valid phone number for US",
            ),
            ("(123) 456-7890", "US", "is not a valid phone number for US"),
            ("()", "US", "is not a valid phone number for US"),
            ("+1 123 456 7890", "US", "is not a valid phone number"),
            ("+999 1234 5678", "US", "is not a valid phone number"),
            ("+7 888 770 000 0000", "US", "is not a valid phone number"),
            ("+", "US", "is not a valid phone number"),
        ] {
            assert_eq!(
                normalize_phone(input, region),
                err(message),
                "{input:?} in {region}"
            );
        }
        assert!("+1 415 555 0123 0123 0123 0123 0123 0123 0".chars().count() > MAX_PHONE_LENGTH);
    }

    #[test]
    fn countries_become_alpha2() {
        for (input, expected) in [
            ("us", "US"),
            ("US", "US"),
            (" usa ", "US"),
            ("U.S.A.", "US"),
            ("U.S.", "US"),
            ("United States", "US"),
            ("united  states of america", "US"),
            ("UK", "GB"),
            ("Great Britain", "GB"),
            ("England", "GB"),
            ("gbr", "GB"),
            ("Canada", "CA"),
            ("Mexico", "MX"),
            ("México", "MX"),
            ("Türkiye", "TR"),
            ("Turkiye", "TR"),
            ("Turkey", "TR"),
            ("Côte d'Ivoire", "CI"),
            ("cote d\u{2019}ivoire", "CI"),
            ("Ivory Coast", "CI"),
            ("Bolivia", "BO"),
            ("Netherlands", "NL"),
            ("The Netherlands", "NL"),
            ("South Korea", "KR"),
            ("Korea (Republic of)", "KR"),
            ("St. Lucia", "LC"),
            ("Saint Kitts & Nevis", "KN"),
            ("Guinea Bissau", "GW"),
            ("Åland Islands", "AX"),
            ("Puerto Rico", "PR"),
            ("Virgin Islands (U.S.)", "VI"),
            ("Georgia", "GE"),
        ] {
            assert_eq!(normalize_country(input), ok(expected), "{input:?}");
        }
    }

    #[test]
    fn unknown_or_ambiguous_countries_are_refused() {
        for (input, message) in [
            ("", "is empty"),
            (" . ", "is empty"),
            ("Narnia", "is not a known country"),
            ("XK", "is not a known country"),
            ("U", "is not a known country"),
            ("United", "is not a known country"),
            (
                "Korea",
                "matches more than one country; use its two-letter code",
            ),
            (
                "Virgin Islands",
                "matches more than one country; use its two-letter code",
            ),
        ] {
            assert_eq!(normalize_country(input), err(message), "{input:?}");
        }
    }

    #[test]
    fn every_iso_country_is_found_by_code_and_name() {
        for country in rust_iso3166::ALL {
            let expected = ok(country.alpha2);
            assert_eq!(normalize_country(country.alpha2), expected);
            assert_eq!(normalize_country(country.alpha3), expected);
            assert_eq!(
                normalize_country(country.name),
                expected,
                "{}",
                country.name
            );
            assert_eq!(
                normalize_country(&country.name.to_uppercase()),
                expected,
                "{}",
                country.name
            );
        }
    }

    #[test]
    fn us_states_and_territories() {
        for (input, expected) in [
            ("ca", "CA"),
            ("CA", "CA"),
            ("US-CA", "CA"),
            ("us-ca", "CA"),
            ("California", "CA"),
            ("  california ", "CA"),
            ("new  york", "NY"),
            ("N.Y.", "NY"),
            ("D.C.", "DC"),
            ("District of Columbia", "DC"),
            ("Washington, D.C.", "DC"),
            ("Washington", "WA"),
            ("Puerto Rico", "PR"),
            ("PR", "PR"),
            ("Guam", "GU"),
            ("U.S. Virgin Islands", "VI"),
            ("Virgin Islands", "VI"),
            ("VI", "VI"),
            ("American Samoa", "AS"),
            ("Northern Mariana Islands", "MP"),
            ("United States Minor Outlying Islands", "UM"),
        ] {
            assert_eq!(
                normalize_subdivision(input, "US"),
                ok(expected),
                "{input:?}"
            );
        }
        let codes: Vec<&str> = us_subdivisions().iter().map(|s| s.region_code).collect();
        assert_eq!(codes.len(), 57, "50 states, DC and 6 outlying areas");
        for territory in ["DC", "PR", "GU", "VI", "AS", "MP", "UM"] {
            assert!(codes.contains(&territory), "{territory}");
        }
    }

    #[test]
    fn subdivisions_of_other_countries() {
        for (input, country, expected) in [
            ("Ontario", "CA", "ON"),
            ("on", "Canada", "ON"),
            ("Québec", "CA", "QC"),
            ("Quebec", "CA", "QC"),
            ("British Columbia", "CA", "BC"),
            ("New South Wales", "AU", "NSW"),
            ("nsw", "AU", "NSW"),
            ("AU-VIC", "AU", "VIC"),
            ("Jalisco", "MX", "JAL"),
            ("Nuevo Leon", "MX", "NLE"),
            ("Ciudad de México", "MX", "CMX"),
            ("Mexico City", "MX", "CMX"),
            ("CDMX", "MX", "CMX"),
            ("Mexico", "MX", "MEX"),
            ("Estado de Mexico", "MX", "MEX"),
            ("Scotland", "GB", "SCT"),
            ("Edinburgh", "UK", "EDH"),
            ("City of London", "GB", "LND"),
            ("Vale of Glamorgan", "GB", "VGL"),
            ("Bayern", "DE", "BY"),
            ("Madrid", "ES", "M"),
            ("Comunidad de Madrid", "ES", "MD"),
        ] {
            assert_eq!(
                normalize_subdivision(input, country),
                ok(expected),
                "{input:?} in {country}"
            );
        }
    }

    #[test]
    fn unknown_subdivisions_are_refused() {
        for (input, country, message) in [
            ("", "US", "is empty"),
            ("Ontario", "US", "is not a state or province of US"),
            ("Calif", "US", "is not a state or province of US"),
            ("MX-JAL", "US", "is not a state or province of US"),
            ("ZZ", "United States", "is not a state or province of US"),
            ("California", "CA", "is not a state or province of CA"),
            (
                "London",
                "GB",
                "matches more than one state or province of GB; use its code",
            ),
            (
                "Greater London",
                "GB",
                "matches more than one state or province of GB; use its code",
            ),
            ("CA", "", "cannot be checked without a known country"),
            ("CA", "Narnia", "cannot be checked without a known country"),
        ] {
            assert_eq!(
                normalize_subdivision(input, country),
                err(message),
                "{input:?} in {country:?}"
            );
        }
    }

    #[test]
    fn subdivisions_of_countries_without_data_are_kept_as_typed() {
        assert!(!SUBDIVISIONS.contains_key("PR"));
        assert_eq!(
            normalize_subdivision("  San Juan  Metro ", "Puerto Rico"),
            ok("San Juan  Metro")
        );
        assert_eq!(normalize_subdivision(" ", "PR"), err("is empty"));
        assert_eq!(
            normalize_subdivision(&"x".repeat(MAX_FREE_SUBDIVISION_LENGTH), "PR"),
            Ok("x".repeat(MAX_FREE_SUBDIVISION_LENGTH))
        );
        assert_eq!(
            normalize_subdivision(&"x".repeat(MAX_FREE_SUBDIVISION_LENGTH + 1), "PR"),
            err("is too long")
        );
        assert_eq!(
            normalize_subdivision("San\0Juan", "PR"),
            err("must not contain control characters")
        );
    }

    #[test]
    fn every_subdivision_code_round_trips() {
        for (&country, &subdivisions) in rust_iso3166::iso3166_2::SUBDIVISION_COUNTRY_MAP.entries()
        {
            for sub in subdivisions {
                let expected = ok(sub.region_code);
                assert_eq!(normalize_subdivision(sub.region_code, country), expected);
                assert_eq!(normalize_subdivision(sub.code, country), expected);
                // A name may be shared (ES has a province and a community called Madrid); then
                // the name is refused as ambiguous or resolves to one of them, never elsewhere.
                match normalize_subdivision(sub.name, country) {
                    Ok(code) => assert!(
                        subdivisions
                            .iter()
                            .any(|s| s.region_code == code && fold(s.name) == fold(sub.name)),
                        "{} in {country} gave {code}",
                        sub.name
                    ),
                    Err(message) => assert!(message.starts_with("matches more than one")),
                }
            }
        }
    }

    #[test]
    fn folding_ignores_only_what_cannot_change_the_meaning() {
        assert_eq!(fold("  Nuevo   León. "), "nuevo leon");
        assert_eq!(fold("Łódzkie"), "lodzkie");
        assert_eq!(fold("Trøndelag"), "trondelag");
        assert_eq!(fold("Saint Kitts & Nevis"), "saint kitts and nevis");
        assert_eq!(fold("US-CA"), "us ca");
        assert_eq!(fold("İstanbul"), "istanbul");
        assert_eq!(
            derived_names("Bolivia (Plurinational State of)"),
            ["Bolivia  "]
        );
        assert_eq!(
            derived_names("Newry, Mourne and Down"),
            Vec::<String>::new()
        );
        assert_eq!(
            derived_names("Edinburgh, City of"),
            ["Edinburgh", "City of Edinburgh"]
        );
        assert_eq!(
            derived_names("Saint Martin (French part)"),
            ["Saint Martin  ", "St Martin (French part)", "St Martin  "]
        );
    }

    /// Formats a US number the ways people type it.
    fn us_formats(area: &str, exchange: &str, line: &str) -> Vec<String> {
        vec![
            format!("{area}{exchange}{line}"),
            format!("({area}) {exchange}-{line}"),
            format!("{area}.{exchange}.{line}"),
            format!("1 {area} {exchange} {line}"),
            format!("+1 {area}-{exchange}-{line}"),
            format!(" +1({area}){exchange}{line} "),
        ]
    }

    const REGIONS: &[&str] = &[
        "US", "CA", "GB", "AU", "MX", "DE", "FR", "IN", "BR", "JP", "IT", "us", "", "XX", "AQ",
    ];

    /// Every region that shares country code 1.
    fn north_american_regions() -> Vec<PhoneRegion> {
        DATABASE
            .region(&1)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.parse().ok())
            .collect()
    }

    /// Regions whose numbers share a country code with others (+1, +7, +44, +61, +262, +590) or
    /// stand alone, so both branches of the region lookup run.
    const VALIDATION_REGIONS: &[PhoneRegion] = &[
        PhoneRegion::US,
        PhoneRegion::CA,
        PhoneRegion::AG,
        PhoneRegion::BS,
        PhoneRegion::PR,
        PhoneRegion::RU,
        PhoneRegion::KZ,
        PhoneRegion::GB,
        PhoneRegion::GG,
        PhoneRegion::AU,
        PhoneRegion::CX,
        PhoneRegion::RE,
        PhoneRegion::YT,
        PhoneRegion::GP,
        PhoneRegion::DE,
        PhoneRegion::FR,
        PhoneRegion::IN,
        PhoneRegion::BR,
        PhoneRegion::MX,
        PhoneRegion::JP,
    ];

    #[test]
    fn our_validation_agrees_with_phonenumber_on_known_numbers() {
        for (text, valid) in [
            ("+14155552671", true),
            ("+12125550134", true),
            ("+10005550134", false),
            ("+442079460958", true),
            ("+8005550100", false),
            ("+80012345678", true),
            ("+79123456789", true),
            ("+77012345678", true),
            ("+61291234567", true),
            ("+262262123456", true),
        ] {
            let number = phonenumber::parse(None, text).expect(text);
            assert_eq!(phonenumber::is_valid(&number), valid, "{text}: the fixture");
            assert_eq!(is_valid_phone(&number), valid, "{text}");
        }
    }

    proptest! {
        #[test]
        fn our_validation_agrees_with_phonenumber(
            region in proptest::sample::select(VALIDATION_REGIONS),
            digits in "[0-9]{3,15}",
            international in any::<bool>(),
        ) {
            let parsed = if international {
                phonenumber::parse(None, format!("+{digits}"))
            } else {
                phonenumber::parse(Some(region), &digits)
            };
            if let Ok(number) = parsed {
                prop_assert_eq!(
                    is_valid_phone(&number),
                    phonenumber::is_valid(&number),
                    "{}", number.format().mode(Mode::E164)
                );
            }
        }

        #[test]
        fn north_american_numbers_read_as_the_parser_reads_them(
            input in prop_oneof![
                "[+]?1?[ .-]?[(]?[0-9]{3}[)]?[ ./-]?[0-9]{3}[ .\u{2010}-]?[0-9]{4}",
                "[+]?[0-9 ()./-]{9,18}",
            ],
            region in proptest::sample::select(north_american_regions()),
        ) {
            let region = (!input.starts_with('+')).then_some(region);
            if let Some(e164) = north_american(&input, region) {
                // The same number wherever the parser reads one (it refuses a few spacings, such
                // as "+1301-2000000", whose digits say the same), and one it reads back as itself.
                if let Ok(parsed) = parsed_phone(&input, region, String::new()) {
                    prop_assert_eq!(&parsed, &e164);
                }
                prop_assert_eq!(parsed_phone(&e164, None, String::new()), Ok(e164.clone()));
            }
        }

        #[test]
        fn arbitrary_text_never_panics(input in any::<String>(), region in any::<String>()) {
            let _ = normalize_phone(&input, &region);
            let _ = normalize_country(&input);
            let _ = normalize_subdivision(&input, &region);
            let _ = normalize_subdivision(&input, "US");
        }

        #[test]
        fn phone_like_text_never_panics_and_yields_e164(
            // Loose character soup finds parser edge cases; digit groups look like real numbers
            // often enough that some of them are valid and the output checks get exercised.
            input in prop_oneof![
                "[+]?[0-9 ()./\u{2010}-\u{2015}\u{a0}-]{0,40}",
                "[+]?([0-9]{1,4}[ ()./-]?){2,4}[0-9]{2,4}",
            ],
            region in proptest::sample::select(REGIONS),
        ) {
            if let Ok(number) = normalize_phone(&input, region) {
                let digits = number.strip_prefix('+');
                prop_assert!(digits.is_some(), "{number}");
                let digits = digits.unwrap_or_default();
                prop_assert!(!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()));
                // Not E.164's 15: libphonenumber accepts national numbers of up to 17 digits
                // (German numbers may carry a direct-dial extension), and so do we.
                prop_assert!(digits.len() <= 20, "{number}");
                // Idempotent whatever region reads it, since it now carries its country code.
                prop_assert_eq!(normalize_phone(&number, region), Ok(number.clone()));
                prop_assert_eq!(normalize_phone(&number, ""), Ok(number.clone()));
            }
        }

        #[test]
        fn formatting_never_changes_a_us_number(
            area in "[2-9][0-9]{2}",
            exchange in "[0-9]{3}",
            line in "[0-9]{4}",
        ) {
            let results: Vec<_> = us_formats(&area, &exchange, &line)
                .iter()
                .map(|text| normalize_phone(text, "US").map_err(|_| ()))
                .collect();
            prop_assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
            if let Ok(number) = &results[0] {
                prop_assert_eq!(number, &format!("+1{area}{exchange}{line}"));
                prop_assert_eq!(normalize_phone(number, "US"), Ok(number.clone()));
            }
        }

        #[test]
        fn country_normalization_is_idempotent(input in any::<String>()) {
            if let Ok(code) = normalize_country(&input) {
                prop_assert_eq!(normalize_country(&code), Ok(code.clone()));
            }
        }

        #[test]
        fn country_names_survive_case_space_and_dots(
            country in proptest::sample::select(rust_iso3166::ALL),
            upper in any::<bool>(),
            pad in "[ .]{0,3}",
        ) {
            let name = if upper { country.name.to_uppercase() } else { country.name.to_lowercase() };
            let typed = format!("{pad}{}{pad}", name.replace(' ', "  "));
            prop_assert_eq!(normalize_country(&typed), Ok(country.alpha2.to_owned()));
        }

        #[test]
        fn subdivision_normalization_is_idempotent(
            input in any::<String>(),
            country in proptest::sample::select(rust_iso3166::ALL),
        ) {
            if let Ok(code) = normalize_subdivision(&input, country.alpha2) {
                prop_assert_eq!(normalize_subdivision(&code, country.alpha2), Ok(code.clone()));
            }
        }

        #[test]
        fn us_states_round_trip_however_typed(
            state in proptest::sample::select(us_subdivisions()),
            use_name in any::<bool>(),
            upper in any::<bool>(),
            pad in "[ .]{0,3}",
        ) {
            let text = if use_name { state.name } else { state.region_code };
            let text = if upper { text.to_uppercase() } else { text.to_lowercase() };
            let typed = format!("{pad}{text}{pad}");
            let code = normalize_subdivision(&typed, "US");
            prop_assert_eq!(&code, &Ok(state.region_code.to_owned()));
            prop_assert_eq!(normalize_subdivision(state.region_code, "usa"), code);
        }
    }
}
