//! A real DNS server for the domain-verification tests: Debian's dnsmasq (`dnsmasq-base`,
//! installed by `scripts/system-deps.sh dns`) as a child process on a free loopback port,
//! answering the TXT records a test gives it, authoritative for `.example` (unknown names there
//! are NXDOMAIN), killed when dropped. Missing dnsmasq fails under `CI=true` and skips loudly
//! otherwise.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A running dnsmasq.
pub struct Dnsmasq {
    child: Child,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<std::path::PathBuf> {
    ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    // Free for both protocols when dnsmasq binds them a moment later (TCP first: it is the one
    // more often taken).
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Dnsmasq {
    /// Starts dnsmasq serving `records` (name, TXT value); `None` when it is not installed
    /// outside CI.
    pub async fn start(records: &[(&str, &str)]) -> Option<Dnsmasq> {
        let Some(bin) = binary() else {
            let message =
                "dnsmasq is not installed: run `scripts/system-deps.sh dns` (make test does)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("\n!!! SKIPPING the DNS part of this test: {message} !!!\n");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.args([
                "--no-daemon",
                "--conf-file=/dev/null",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--local=/example/",
                &format!("--pid-file={}", dir.path().join("pid").display()),
            ]);
            for (name, value) in records {
                cmd.arg(format!("--txt-record={name},{value}"));
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting dnsmasq");
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            // Ready when it answers; gone when the port was taken after all.
            for _ in 0..50 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let probe = koru_controlplane::sso::domains::DnsConfig {
                    resolver: Some(addr),
                };
                if probe.txt("probe.example").await.is_ok() {
                    return Some(Dnsmasq {
                        child,
                        addr,
                        _dir: dir,
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start");
    }
}
