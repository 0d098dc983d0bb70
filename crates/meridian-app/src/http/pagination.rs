//! Cursor pagination shared by every list: `?limit=` (1..=100, default 50) and an opaque
//! `?cursor=` that encodes the sort key of the last item returned.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::AppError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 100;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated page request: the limit and the decoded sort key to continue after.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<Vec<String>>,
}

impl PageQuery {
    pub fn parse(&self) -> Result<PageRequest, AppError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AppError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
                AppError::field("cursor", "is not a cursor this server returned")
            })?),
        };
        Ok(PageRequest { limit, after })
    }
}

impl PageRequest {
    /// One more row than the page holds is fetched to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }

    /// The `n`th component of the cursor's sort key.
    pub fn after_key(&self, n: usize) -> Option<&str> {
        self.after
            .as_ref()
            .and_then(|k| k.get(n))
            .map(String::as_str)
    }

    /// The cursor of a list ordered by a time and an id (see [`time_cursor`]).
    pub fn after_time(&self) -> Result<Option<(OffsetDateTime, String)>, AppError> {
        self.after.as_deref().map(time_key).transpose()
    }
}

fn not_ours() -> AppError {
    AppError::field("cursor", "is not a cursor this server returned")
}

fn time_key(key: &[String]) -> Result<(OffsetDateTime, String), AppError> {
    match key {
        [at, id] => OffsetDateTime::parse(at, &Rfc3339)
            .map(|at| (at, id.clone()))
            .map_err(|_| not_ours()),
        _ => Err(not_ours()),
    }
}

/// A (time, id) position read back from a cursor made by [`encode_time_cursor`].
pub fn decode_time_cursor(cursor: &str) -> Result<(OffsetDateTime, String), AppError> {
    decode_cursor(cursor)
        .ok_or_else(not_ours)
        .and_then(|key| time_key(&key))
}

/// The cursor of a row in a list ordered by a time and an id.
pub fn encode_time_cursor(at: OffsetDateTime, id: &str) -> String {
    encode_cursor(&[&at.format(&Rfc3339).unwrap_or_default(), id])
}

/// The sort key of a row in a list ordered by a time and an id, for [`Page::from_rows`].
pub fn time_cursor(at: OffsetDateTime, id: &str) -> Vec<String> {
    vec![at.format(&Rfc3339).unwrap_or_default(), id.to_owned()]
}

pub fn encode_cursor(key: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

pub fn decode_cursor(cursor: &str) -> Option<Vec<String>> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `fetch_limit` rows, using `key` to make the cursor.
    pub fn from_rows(
        mut rows: Vec<T>,
        request: &PageRequest,
        key: impl Fn(&T) -> Vec<String>,
    ) -> Self {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| {
                let key = key(last);
                let parts: Vec<&str> = key.iter().map(String::as_str).collect();
                encode_cursor(&parts)
            })
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert!(
            PageQuery {
                limit: Some(0),
                cursor: None
            }
            .parse()
            .is_err()
        );
        assert!(
            PageQuery {
                limit: Some(101),
                cursor: None
            }
            .parse()
            .is_err()
        );
        assert_eq!(PageQuery::default().parse().expect("default").limit, 50);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor(&["b", "2"]);
        let page = PageQuery {
            limit: None,
            cursor: Some(cursor),
        }
        .parse()
        .expect("cursor");
        assert_eq!(page.after_key(0), Some("b"));
        assert_eq!(page.after_key(1), Some("2"));
        assert!(
            PageQuery {
                limit: None,
                cursor: Some("!!".into())
            }
            .parse()
            .is_err()
        );
    }

    #[test]
    fn next_cursor_only_when_more_rows() {
        let req = PageRequest {
            limit: 2,
            after: None,
        };
        let page = Page::from_rows(vec![1, 2, 3], &req, |n| vec![n.to_string()]);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next_cursor, Some(encode_cursor(&["2"])));
        let page = Page::from_rows(vec![1, 2], &req, |n| vec![n.to_string()]);
        assert_eq!(page.next_cursor, None);
    }
}
