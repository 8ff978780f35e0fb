//! The documents of `koru-bench query`: users, sales, customers and orders, each a pure function of
//! its number, so KoruDelta and SQLite get exactly the same data and a test can recount it.

use serde::Serialize;

/// Regions of users and sales: the groups of the aggregation.
pub const REGIONS: [&str; 8] = [
    "eu-west", "eu-north", "us-east", "us-west", "ap-south", "ap-east", "sa-east", "af-south",
];

/// The words bios are made of. The text query's terms are placed apart (see [`user`]) so the
/// query stays selective: one search reads at most 100,000 hits, and 1 M bios must not reach it.
const WORDS: [&str; 61] = [
    "engineer", "designer", "writer", "runner", "coffee", "music", "travel", "garden", "books",
    "cloud", "systems", "storage", "latency", "fast", "team", "lead", "open", "source", "rust",
    "python", "data", "science", "mountain", "river", "city", "night", "morning", "family",
    "friends", "startup", "product", "manager", "research", "teacher", "student", "artist",
    "photo", "film", "games", "chess", "cycling", "hiking", "cooking", "bread", "tea", "dogs",
    "cats", "ocean", "sailing", "history", "physics", "math", "poetry", "jazz", "piano", "guitar",
    "football", "tennis", "yoga", "climbing", "skiing",
];

/// Words per bio.
const BIO_WORDS: u64 = 8;

/// Customers per order: the join's 100 K orders meet 10 K customers at the default size.
pub const ORDERS_PER_CUSTOMER: u64 = 10;

/// How many documents of each kind a run holds for `--docs n`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    /// Users (point lookups, filters, full text).
    pub users: u64,
    /// Sales (the aggregation).
    pub sales: u64,
    /// Orders (the join's left side): n / 10.
    pub orders: u64,
    /// Customers (the join's right side): orders / 10.
    pub customers: u64,
}

impl Sizes {
    /// The sizes for `--docs n`.
    pub fn new(n: u64) -> Sizes {
        let orders = (n / 10).max(ORDERS_PER_CUSTOMER);
        Sizes {
            users: n,
            sales: n,
            orders,
            customers: orders / ORDERS_PER_CUSTOMER,
        }
    }
}

/// splitmix64 of `i` and a salt: every field draws its own stream.
pub fn mix(i: u64, salt: u64) -> u64 {
    let mut z = i
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Premium, basic or trial: one in ten is premium.
fn status(i: u64, salt: u64) -> &'static str {
    match mix(i, salt) % 10 {
        0 => "premium",
        1..=4 => "basic",
        _ => "trial",
    }
}

/// A user: a unique email, a selective `cohort` (ten users each, indexed) and its unindexed copy
/// `cohort_copy` (the scan side of the filter figure), and a short bio (the text index).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// The document's key, `u<i>`.
    #[serde(skip)]
    pub key: String,
    /// `user<i>@example.com`.
    pub email: String,
    /// A display name.
    pub name: String,
    /// premium, basic or trial.
    pub status: &'static str,
    /// One of [`REGIONS`].
    pub region: &'static str,
    /// `i / 10`: each value matches ten users.
    pub cohort: u64,
    /// The same value under a field no index covers.
    pub cohort_copy: u64,
    /// Years.
    pub age: u64,
    /// Eight words of [`WORDS`] and the text query's terms.
    pub bio: String,
}

/// User number `i`.
pub fn user(i: u64) -> User {
    let mut bio: Vec<&str> = (0..BIO_WORDS)
        .map(|w| WORDS[(mix(i, 100 + w) % WORDS.len() as u64) as usize])
        .collect();
    // One bio in ten says `database`, one in twenty `performance`, one in five `slow`, each at
    // its own position: about 4% match `database +performance -slow`.
    for (salt, every, position, word) in [
        (200, 10, 1, "database"),
        (201, 20, 4, "performance"),
        (202, 5, 6, "slow"),
    ] {
        if mix(i, salt).is_multiple_of(every) {
            bio[position] = word;
        }
    }
    User {
        key: format!("u{i}"),
        email: email(i),
        name: format!("User {i}"),
        status: status(i, 1),
        region: REGIONS[(mix(i, 2) % REGIONS.len() as u64) as usize],
        cohort: i / 10,
        cohort_copy: i / 10,
        age: 18 + mix(i, 3) % 60,
        bio: bio.join(" "),
    }
}

/// The email of user `i`.
pub fn email(i: u64) -> String {
    format!("user{i}@example.com")
}

/// Whether a bio matches the text query `database +performance -slow`: `performance` must be
/// there, `slow` must not, `database` only ranks.
pub fn bio_matches(bio: &str) -> bool {
    let has = |w: &str| bio.split_whitespace().any(|x| x == w);
    has("performance") && !has("slow")
}

/// A sale: a region, a whole amount and a discount in quarters, so sums are exact in any order.
#[derive(Debug, Clone, Serialize)]
pub struct Sale {
    /// `s<i>`.
    #[serde(skip)]
    pub key: String,
    /// One of [`REGIONS`].
    pub region: &'static str,
    /// 1..=1000.
    pub amount: u64,
    /// 0, 0.25, ..., 2.
    pub discount: f64,
}

/// Sale number `i`.
pub fn sale(i: u64) -> Sale {
    Sale {
        key: format!("s{i}"),
        region: REGIONS[(mix(i, 10) % REGIONS.len() as u64) as usize],
        amount: 1 + mix(i, 11) % 1000,
        discount: (mix(i, 12) % 9) as f64 * 0.25,
    }
}

/// A customer, the joined side: `id` repeats the key so the join can use a field with an index.
#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    /// `c<i>`.
    #[serde(skip)]
    pub key: String,
    /// The key again.
    pub id: String,
    /// premium (one in ten), basic or trial.
    pub status: &'static str,
    /// One of [`REGIONS`].
    pub region: &'static str,
}

/// Customer number `i`.
pub fn customer(i: u64) -> Customer {
    Customer {
        key: format!("c{i}"),
        id: format!("c{i}"),
        status: status(i, 20),
        region: REGIONS[(mix(i, 21) % REGIONS.len() as u64) as usize],
    }
}

/// An order of one customer.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    /// `o<i>`.
    #[serde(skip)]
    pub key: String,
    /// The customer's key.
    pub user_id: String,
    /// 1..=500.
    pub amount: u64,
}

/// Order number `i` of a run with `customers` customers.
pub fn order(i: u64, customers: u64) -> Order {
    Order {
        key: format!("o{i}"),
        user_id: format!("c{}", mix(i, 30) % customers.max(1)),
        amount: 1 + mix(i, 31) % 500,
    }
}

/// A document's JSON text; the types above always serialize.
pub fn json<T: Serialize>(doc: &T) -> String {
    serde_json::to_string(doc).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_stable_and_shaped_for_the_queries() {
        assert_eq!(user(7).key, "u7");
        assert_eq!(user(7).email, "user7@example.com");
        assert_eq!(user(25).cohort, 2);
        assert_eq!(user(25).bio, user(25).bio);
        assert_eq!(user(3).bio.split(' ').count(), BIO_WORDS as usize);
        let sizes = Sizes::new(1_000_000);
        assert_eq!((sizes.orders, sizes.customers), (100_000, 10_000));
        let premium = (0..10_000)
            .filter(|&i| customer(i).status == "premium")
            .count();
        assert!((800..1200).contains(&premium), "{premium}");
        let matching = (0..10_000).filter(|&i| bio_matches(&user(i).bio)).count();
        assert!((250..600).contains(&matching), "{matching}");
        assert!(bio_matches("a performance b"));
        assert!(!bio_matches("performance slow"));
        assert!(!bio_matches("database fast"));
        let v: serde_json::Value = serde_json::from_str(&json(&sale(1))).unwrap();
        assert!(v["amount"].as_u64().is_some() && v.get("key").is_none());
    }
}
