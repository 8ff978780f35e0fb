//! Cursor pagination of list endpoints: `?limit=&cursor=` in, `{"items": [...], "next_cursor"}`
//! out. The cursor is opaque to clients: the sort key (creation time and id) of the last item.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{Error, Result};

/// Items per page when the client names no limit.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page.
pub const MAX_LIMIT: u32 = 500;

/// The paging parameters of a list request.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 500 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Where a page starts: after the item with this creation time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// Creation time of the last item seen, ms since the epoch.
    pub created_at: i64,
    /// Its id.
    pub id: String,
}

impl PageQuery {
    /// The checked limit and starting point.
    pub fn parse(&self) -> Result<(u32, Option<After>)> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::BadRequest(format!("limit must be 1 to {MAX_LIMIT}")));
        }
        let after = self.cursor.as_deref().map(decode).transpose()?;
        Ok((limit, after))
    }
}

fn decode(cursor: &str) -> Result<After> {
    let invalid =
        || Error::BadRequest("invalid cursor; pass next_cursor from the previous page".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (created_at, id) = text.split_once(':').ok_or_else(invalid)?;
    Ok(After {
        created_at: created_at.parse().map_err(|_| invalid())?,
        id: id.to_string(),
    })
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` fetched items: the extra one only says another page exists.
    pub fn from_fetched(
        mut items: Vec<T>,
        limit: u32,
        key: impl Fn(&T) -> (i64, String),
    ) -> Page<T> {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = more
            .then(|| {
                items.last().map(|last| {
                    let (created_at, id) = key(last);
                    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
                })
            })
            .flatten();
        Page { items, next_cursor }
    }
}

/// The lower bound of a keyset query: items after `after`, or everything.
pub fn bounds(after: &Option<After>) -> (i64, String) {
    match after {
        Some(a) => (a.created_at, a.id.clone()),
        None => (i64::MIN, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let page = Page::from_fetched(vec![(1, "a"), (2, "b"), (3, "c")], 2, |(t, id)| {
            (*t, id.to_string())
        });
        assert_eq!(page.items.len(), 2);
        let q = PageQuery {
            limit: Some(2),
            cursor: page.next_cursor.clone(),
        };
        let (limit, after) = q.parse().unwrap();
        assert_eq!(
            (limit, after),
            (
                2,
                Some(After {
                    created_at: 2,
                    id: "b".into()
                })
            )
        );
        let last = Page::from_fetched(vec![(3, "c")], 2, |(t, id)| (*t, id.to_string()));
        assert_eq!(last.next_cursor, None);
        for bad in ["!!", "bm9jb2xvbg", "eDp5"] {
            let q = PageQuery {
                limit: None,
                cursor: Some(bad.into()),
            };
            assert!(q.parse().is_err(), "{bad}");
        }
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
                limit: Some(501),
                cursor: None
            }
            .parse()
            .is_err()
        );
    }
}
