//! The database: SQLite (embedded default, a file in the data directory) or PostgreSQL (a
//! `postgres://` URL), behind one `sqlx::AnyPool`. Queries use `$1` placeholders, which both
//! understand, and a schema subset both accept (text ids, bigint millisecond timestamps).

use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

/// The migrations, embedded at build time and run at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no database we support.
    #[error("unsupported database URL {0:?}: use sqlite://<path> or postgres://...")]
    Unsupported(String),
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The SQLite URL of the embedded database in `data_dir`, created on first start.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("controlplane.db").display()
    )
}

/// Connects to `url` (sqlite:// or postgres://) and runs the migrations.
pub async fn connect(url: &str) -> Result<AnyPool, DbError> {
    sqlx::any::install_default_drivers();
    let is_sqlite = url.starts_with("sqlite:");
    if !is_sqlite && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        return Err(DbError::Unsupported(url.to_string()));
    }
    let options = AnyConnectOptions::from_str(url)
        .map_err(DbError::Connect)?
        .disable_statement_logging();
    let pool = AnyPoolOptions::new()
        // SQLite allows one writer; a single connection avoids "database is locked" under load.
        .max_connections(if is_sqlite { 1 } else { 10 })
        .connect_with(options)
        .await
        .map_err(DbError::Connect)?;
    if is_sqlite {
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&pool)
            .await
            .map_err(DbError::Connect)?;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .map_err(DbError::Connect)?;
    }
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Milliseconds since the Unix epoch, the unit of every timestamp column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new random id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
