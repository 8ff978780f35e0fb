//! The backup stores the backup tests run against: a `file://` directory always, and a fresh prefix in
//! the bucket of the S3-compatible server that `scripts/s3env.sh` starts (MinIO) when
//! `KORU_TEST_S3_ENDPOINT` is set.
//!
//! A test body takes a [`StoreKind`] and [`backup_test!`](crate::backup_test) turns it into one test
//! per kind, `<name>::file` and `<name>::s3`, so each store passes or fails by name. Without the S3
//! environment the `s3` variant fails when `CI=true` and is skipped with a loud `SKIPPING` elsewhere.
//! Tests look at and damage objects through [`TestStore`], i.e. through the same `object_store`
//! client the server uses, so one test body serves both stores.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use koru_dataplane::backup::{BackupError, BackupStore, BackupUrl};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Which backup store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A local directory, `file:///...`.
    File,
    /// The S3-compatible test server, `s3://<bucket>/<test>-<unique>`.
    S3,
}

/// Defines `mod <name> { file, s3 }`: two tests that run `async fn <name>(StoreKind)`.
#[macro_export]
macro_rules! backup_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn file() {
                super::$name($crate::common::stores::StoreKind::File).await;
            }

            #[tokio::test]
            async fn s3() {
                super::$name($crate::common::stores::StoreKind::S3).await;
            }
        }
    };
}

/// The S3 server's settings from the environment `scripts/s3env.sh up` prints.
struct S3Env {
    endpoint: String,
    bucket: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The S3 settings, or None (after saying so) when they are missing outside CI; panics in CI.
fn s3_env() -> Option<S3Env> {
    // libtest names each test's thread after the test, e.g. `oracle::s3`.
    let current = std::thread::current();
    let test = current.name().unwrap_or("this test");
    match (env("KORU_TEST_S3_ENDPOINT"), env("KORU_TEST_S3_BUCKET")) {
        (Some(endpoint), Some(bucket)) => {
            // The server and `restore` children read AWS_*: they must reach the same server.
            assert_eq!(
                env("AWS_ENDPOINT_URL").as_deref(),
                Some(endpoint.as_str()),
                "KORU_TEST_S3_ENDPOINT is set but AWS_ENDPOINT_URL does not name the same server; \
                 set both with: eval \"$(scripts/s3env.sh up)\""
            );
            Some(S3Env { endpoint, bucket })
        }
        _ if env("CI").as_deref() == Some("true") => panic!(
            "{test}: KORU_TEST_S3_ENDPOINT / KORU_TEST_S3_BUCKET are not set, and CI=true requires \
             the backup tests to run against the S3 server too: run scripts/test.sh (make test), \
             or eval \"$(scripts/s3env.sh up)\" before cargo test"
        ),
        _ => {
            // Straight to stderr rather than eprintln!, which the test harness captures.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPING {test} against S3: KORU_TEST_S3_ENDPOINT is not set (start the test \
                 server with: eval \"$(scripts/s3env.sh up)\")"
            );
            None
        }
    }
}

/// A prefix no other test or earlier run uses: the bucket is shared by every test of a run.
fn unique(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "{label}-{:x}-{:x}-{}",
        nanos as u64,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One backup store of a test, with a handle to read, write and delete its objects.
pub struct TestStore {
    /// Which kind it is.
    pub kind: StoreKind,
    /// The `--backup-store` / `--from` URL.
    pub url: String,
    objects: BackupStore,
    /// The directory of a `file://` store.
    dir: Option<PathBuf>,
    /// For an S3 store whose outages the test controls: the proxy the server talks through.
    switch: Option<Switch>,
}

impl TestStore {
    /// The store of `kind` for a test (`label` starts its S3 prefix; a file store lives under
    /// `tmp`); None when the S3 variant is skipped.
    pub fn new(kind: StoreKind, label: &str, tmp: &Path) -> Option<TestStore> {
        let (url, dir) = match kind {
            StoreKind::File => {
                let dir = tmp.join("store");
                (format!("file://{}", dir.display()), Some(dir))
            }
            StoreKind::S3 => {
                let s3 = s3_env()?;
                (format!("s3://{}/{}", s3.bucket, unique(label)), None)
            }
        };
        let parsed: BackupUrl = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
        let objects = BackupStore::open(&parsed, true).unwrap_or_else(|e| panic!("{url}: {e}"));
        Some(TestStore {
            kind,
            url,
            objects,
            dir,
            switch: None,
        })
    }

    /// Lets [`outage`](Self::outage) cut the server off an S3 store: the server started with
    /// [`server_env`](Self::server_env) reaches it through a loopback proxy that can refuse and
    /// drop connections. (A file store needs nothing: its directory is moved away.)
    pub fn with_outage_switch(mut self) -> TestStore {
        if self.kind == StoreKind::S3 {
            let endpoint = env("KORU_TEST_S3_ENDPOINT").expect("an S3 store has an endpoint");
            self.switch = Some(Switch::start(&endpoint));
        }
        self
    }

    /// Environment for a server process archiving to this store.
    pub fn server_env(&self) -> Vec<(String, String)> {
        match &self.switch {
            Some(switch) => vec![("AWS_ENDPOINT_URL".into(), switch.url())],
            None => Vec::new(),
        }
    }

    /// Starts (`true`) or ends (`false`) an outage: every request of the server fails meanwhile.
    pub fn outage(&self, down: bool) {
        match (&self.switch, &self.dir) {
            (Some(switch), _) => switch.set_down(down),
            (None, Some(dir)) => {
                // Tests run as root, so permissions cannot make the store fail: a file where the
                // store directory was makes every request fail instead.
                let aside = dir.with_file_name("store-aside");
                if down {
                    std::fs::rename(dir, &aside).expect("moving the store aside");
                    std::fs::write(dir, b"not a directory").expect("writing the blocker");
                } else {
                    std::fs::remove_file(dir).expect("removing the blocker");
                    std::fs::rename(&aside, dir).expect("moving the store back");
                }
            }
            (None, None) => panic!("outage of an S3 store needs with_outage_switch()"),
        }
    }

    /// Keys (relative to the store) of every object under `dir`, sorted.
    pub async fn list(&self, dir: &str) -> Vec<String> {
        self.objects
            .list(dir)
            .await
            .unwrap_or_else(|e| panic!("listing {}: {e}", self.objects.describe(dir)))
    }

    /// The names (last path part) of the objects under `dir` ending in `suffix`, sorted.
    pub async fn names(&self, dir: &str, suffix: &str) -> Vec<String> {
        self.list(dir)
            .await
            .into_iter()
            .filter(|k| k.ends_with(suffix))
            .map(|k| k.rsplit('/').next().unwrap_or_default().to_string())
            .collect()
    }

    /// An object's bytes; panics when it is missing.
    pub async fn get(&self, key: &str) -> Bytes {
        self.objects
            .get(key)
            .await
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.objects.describe(key)))
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> bool {
        match self.objects.get(key).await {
            Ok(_) => true,
            Err(BackupError::Missing { .. }) => false,
            Err(e) => panic!("reading {}: {e}", self.objects.describe(key)),
        }
    }

    /// Writes an object whole, replacing what is there.
    pub async fn put(&self, key: &str, bytes: impl Into<Bytes>) {
        self.objects
            .put(key, bytes.into())
            .await
            .unwrap_or_else(|e| panic!("writing {}: {e}", self.objects.describe(key)));
    }

    /// Deletes an object.
    pub async fn delete(&self, key: &str) {
        self.objects
            .delete(key)
            .await
            .unwrap_or_else(|e| panic!("deleting {}: {e}", self.objects.describe(key)));
    }
}

/// Whether the proxy passes traffic or cuts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Down,
    Closed,
}

/// A loopback TCP proxy in front of the S3 server that can be cut: while down it closes every new
/// connection at once and drops those in flight, as a store that went away would. It runs on its
/// own thread and runtime, so a test blocked on a child process never stalls the server's uploads.
struct Switch {
    addr: SocketAddr,
    link: watch::Sender<Link>,
    thread: Option<JoinHandle<()>>,
}

impl Switch {
    fn start(endpoint: &str) -> Switch {
        let upstream = url::Url::parse(endpoint)
            .ok()
            .and_then(|u| u.socket_addrs(|| None).ok())
            .and_then(|a| a.into_iter().next())
            .unwrap_or_else(|| panic!("KORU_TEST_S3_ENDPOINT {endpoint:?} names no address"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let (link, watch_link) = watch::channel(Link::Up);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(serve(listener, upstream, watch_link));
        });
        Switch {
            addr,
            link,
            thread: Some(thread),
        }
    }

    /// The endpoint to give the server instead of the real one. SigV4 signs the Host header the
    /// client sends and the server checks the one it receives, so the proxy's own address is fine.
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_down(&self, down: bool) {
        self.link
            .send(if down { Link::Down } else { Link::Up })
            .expect("the proxy is running");
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.link.send(Link::Closed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: std::net::TcpListener, upstream: SocketAddr, link: watch::Receiver<Link>) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let mut closed = link.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = closed.wait_for(|l| *l == Link::Closed) => return,
        };
        let Ok((mut inbound, _)) = accepted else {
            continue;
        };
        if *link.borrow() != Link::Up {
            continue; // dropping it closes the connection at once
        }
        let mut cut = link.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = cut.wait_for(|l| *l != Link::Up) => {}
            }
        });
    }
}

/// Archives `store` into the backup store at `url` (created when missing) and takes a base
/// backup of everything written so far, as the server's archiver and `POST /admin/backups` do.
pub async fn base_backup(
    store: &koru_dataplane::Store,
    url: &BackupUrl,
) -> koru_dataplane::backup::Manifest {
    let status = koru_dataplane::backup::Archiver::start(
        store.clone(),
        BackupStore::open(url, true).expect("the backup store"),
        std::time::Duration::from_millis(50),
        std::sync::Arc::new(koru_dataplane::backup::archiver::ArchiveMetrics::default()),
        None,
        None,
    );
    koru_dataplane::backup::base::create(&status, std::time::Duration::from_secs(60))
        .await
        .expect("a base backup")
}
