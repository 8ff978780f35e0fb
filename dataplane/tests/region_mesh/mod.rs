//! A mesh of regions for the multi-region tests: each region a `koru-dataplane` child process
//! on a fixed loopback port, and every stream (region R reading region S's feed) going through
//! a tiny TCP proxy of the test's that can cut and heal that one link.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::Server;
use crate::common::cluster::free_port;

/// A TCP proxy to one region: while cut it refuses new connections and has dropped live ones.
pub struct Proxy {
    /// Where peers connect.
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    target: Arc<Mutex<SocketAddr>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let target = Arc::new(Mutex::new(target));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (cut, conns, to) = (Arc::clone(&cut), Arc::clone(&conns), Arc::clone(&target));
            async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let target = *to.lock();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    let mut live = conns.lock();
                    live.retain(|t| !t.is_finished());
                    live.push(task);
                }
            }
        });
        Proxy {
            addr,
            cut,
            target,
            conns,
            accept,
        }
    }

    /// Cuts the link: live connections drop, new ones are refused.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }

    /// Sends new connections to `target` (a region's next Raft member), dropping live ones.
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock() = target;
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }

    /// Heals the link.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }
}

/// One region of the mesh.
pub struct Region {
    /// Its name.
    pub name: String,
    /// Its API port (kept across restarts).
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
    /// The running process, None while killed.
    pub server: Option<Server>,
    /// Its arguments.
    args: Vec<String>,
}

impl Region {
    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Regions all streaming from each other through proxies.
pub struct Mesh {
    /// The regions by name.
    pub regions: BTreeMap<String, Region>,
    /// `(reader, source)` → the proxy the reader's stream from the source goes through.
    pub links: BTreeMap<(String, String), Proxy>,
    _tmp: tempfile::TempDir,
}

impl Mesh {
    /// Starts `names` as single-node regions, each streaming from all others, with `extra`
    /// arguments for every region.
    pub async fn start(names: &[&str], extra: &[&str]) -> Mesh {
        Mesh::start_later(names, extra, &[]).await
    }

    /// [`Mesh::start`], except that the regions in `later` are set up (ports, proxies, every
    /// other region streaming from them) but not started: see [`Mesh::start_bare`].
    pub async fn start_later(names: &[&str], extra: &[&str], later: &[&str]) -> Mesh {
        let tmp = tempfile::tempdir().unwrap();
        let ports: BTreeMap<String, u16> =
            names.iter().map(|n| (n.to_string(), free_port())).collect();
        let mut links = BTreeMap::new();
        for r in names {
            for s in names.iter().filter(|s| *s != r) {
                let target: SocketAddr = format!("127.0.0.1:{}", ports[*s]).parse().unwrap();
                links.insert((r.to_string(), s.to_string()), Proxy::start(target).await);
            }
        }
        let mut regions = BTreeMap::new();
        for r in names {
            let mut args = vec!["--region".to_string(), r.to_string()];
            for s in names.iter().filter(|s| *s != r) {
                let proxy = &links[&(r.to_string(), s.to_string())];
                args.push("--region-peer".into());
                args.push(format!("{s}=http://{}", proxy.addr));
            }
            args.extend(extra.iter().map(|a| a.to_string()));
            let dir = tmp.path().join(r);
            let mut region = Region {
                name: r.to_string(),
                port: ports[*r],
                dir,
                server: None,
                args,
            };
            if !later.contains(r) {
                start_region(&mut region);
            }
            regions.insert(r.to_string(), region);
        }
        Mesh {
            regions,
            links,
            _tmp: tmp,
        }
    }

    /// A region's base URL.
    pub fn url(&self, region: &str) -> String {
        self.regions[region].url()
    }

    /// Cuts or heals the stream `reader` follows from `source`.
    pub fn set_link(&self, reader: &str, source: &str, up: bool) {
        let p = &self.links[&(reader.to_string(), source.to_string())];
        if up { p.heal() } else { p.cut() }
    }

    /// Cuts or heals every link into and out of `region`.
    pub fn isolate(&self, region: &str, isolated: bool) {
        for ((r, s), p) in &self.links {
            if r == region || s == region {
                if isolated { p.cut() } else { p.heal() }
            }
        }
    }

    /// SIGKILLs a region.
    pub fn kill(&mut self, region: &str) {
        if let Some(mut s) = self.regions.get_mut(region).unwrap().server.take() {
            s.kill();
        }
    }

    /// Starts a killed region again on its port and data directory.
    pub fn restart(&mut self, region: &str) {
        start_region(self.regions.get_mut(region).unwrap());
    }

    /// Starts a region that is not running without its peers (no streams), e.g. to seed it;
    /// [`Mesh::kill`] and [`Mesh::restart`] then bring it up with them.
    pub fn start_bare(&mut self, region: &str) {
        let r = self.regions.get_mut(region).unwrap();
        let mut args: Vec<&str> = Vec::new();
        let mut it = r.args.iter();
        while let Some(a) = it.next() {
            if a == "--region-peer" {
                it.next();
            } else {
                args.push(a);
            }
        }
        let listen = format!("127.0.0.1:{}", r.port);
        let server = Server::try_start_at(&r.dir, &listen, &args, &[])
            .unwrap_or_else(|e| panic!("region {} did not start: {e:?}", r.name));
        r.server = Some(server);
    }

    /// `GET /admin/v1/regions` of a region.
    pub async fn status(&self, http: &reqwest::Client, region: &str) -> Value {
        http.get(format!("{}/admin/v1/regions", self.url(region)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Everything the regions logged.
    pub fn logs(&self) -> String {
        self.regions
            .values()
            .filter_map(|r| {
                r.server
                    .as_ref()
                    .map(|s| format!("--- {}\n{}", r.name, s.stderr()))
            })
            .collect()
    }
}

fn start_region(region: &mut Region) {
    let args: Vec<&str> = region.args.iter().map(String::as_str).collect();
    let listen = format!("127.0.0.1:{}", region.port);
    let server = Server::try_start_at(&region.dir, &listen, &args, &[])
        .unwrap_or_else(|e| panic!("region {} did not start: {e:?}", region.name));
    region.server = Some(server);
}

/// Polls `check` every 100 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
