//! The on-disk layout of one locally provisioned cluster, and the crash-safe file operations on it.
//!
//! `<data_dir>/clusters/<id>/` holds `spec.json` (the applied [`ClusterSpec`]), `public.pem` (the
//! token verification key), `port` (the loopback port, chosen once and kept forever so the
//! endpoint never changes), `pid` (the data plane's process id, to adopt it after a control-plane
//! restart), `dataplane.log` (the data plane's stdout and stderr) and `data/` (its `--data-dir`).
//! Its backup store is `<data_dir>/backups/<id>/`, outside that directory.
//! `spec.json` is written last when a cluster is created: a directory without it is an apply that
//! never finished, and is not brought up on start.

use std::collections::HashSet;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use super::super::{ClusterSpec, ProvisionError};

/// How many times a free port is asked of the kernel before giving up.
const PORT_ATTEMPTS: usize = 32;

/// Longest cluster id accepted as a directory name.
const MAX_ID_LEN: usize = 128;

/// The paths of one cluster's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClusterDir {
    root: PathBuf,
}

impl ClusterDir {
    /// The directory of cluster `id` under `clusters` (`<data_dir>/clusters`).
    pub(super) fn new(clusters: &Path, id: &str) -> ClusterDir {
        ClusterDir {
            root: clusters.join(id),
        }
    }

    /// The cluster's directory.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// The applied spec.
    pub(super) fn spec_file(&self) -> PathBuf {
        self.root.join("spec.json")
    }

    /// The token verification key handed to the data plane.
    pub(super) fn public_key(&self) -> PathBuf {
        self.root.join("public.pem")
    }

    /// The replication secret shared by every region of global database `cluster_id`:
    /// `<data_dir>/clusters/<cluster_id>.region-token`, beside the regions' directories (a file,
    /// so the start-up scan, which looks at directories only, passes it by).
    pub(super) fn region_token(&self, cluster_id: &str) -> PathBuf {
        let clusters = self.root.parent().unwrap_or(&self.root);
        clusters.join(format!("{cluster_id}.region-token"))
    }

    /// The data plane's `--data-dir`.
    pub(super) fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The cluster's backup store, `<data_dir>/backups/<id>`: beside `clusters/`, not inside the
    /// cluster's directory, so removing that directory on deletion leaves its backups alone.
    pub(super) fn backups(&self) -> PathBuf {
        let data_dir = self
            .root
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"));
        let id = self.root.file_name().unwrap_or_default();
        data_dir.join("backups").join(id)
    }

    /// The loopback port.
    pub(super) fn port_file(&self) -> PathBuf {
        self.root.join("port")
    }

    /// The data plane's process id.
    pub(super) fn pid_file(&self) -> PathBuf {
        self.root.join("pid")
    }

    /// The data plane's stdout and stderr, appended across restarts.
    pub(super) fn log(&self) -> PathBuf {
        self.root.join("dataplane.log")
    }

    /// Reads `spec.json`; `None` when the file does not exist.
    pub(super) fn read_spec(&self) -> Result<Option<ClusterSpec>, ProvisionError> {
        let path = self.spec_file();
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ProvisionError::Local(format!("{} is not a cluster spec: {e}", path.display()))
        })
    }

    /// Reads `port`; `None` when the file does not exist.
    pub(super) fn read_port(&self) -> Result<Option<u16>, ProvisionError> {
        let path = self.port_file();
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        String::from_utf8_lossy(&bytes)
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .map(Some)
            .ok_or_else(|| {
                ProvisionError::Local(format!("{} does not hold a port number", path.display()))
            })
    }

    /// Reads `pid`; `None` when it is missing or unreadable, since it is only a hint for adoption.
    pub(super) fn read_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Records the running data plane's process id.
    pub(super) fn write_pid(&self, pid: u32) -> Result<(), ProvisionError> {
        write_atomic(&self.pid_file(), pid.to_string().as_bytes())
    }

    /// Forgets the process id once that process is gone, so a reused pid is never mistaken for it.
    pub(super) fn remove_pid(&self) {
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Writes the key and then the spec; the spec goes last because its presence marks the cluster
    /// as existing.
    pub(super) fn write_spec(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        write_atomic(&self.public_key(), spec.token_public_key_pem.as_bytes())?;
        let json = serde_json::to_vec_pretty(spec).map_err(|e| {
            ProvisionError::Local(format!("cannot serialize the spec of {}: {e}", spec.id))
        })?;
        write_atomic(&self.spec_file(), &json)
    }

    /// Creates the directory and its files for `spec`, keeping the port if one was already chosen,
    /// else choosing one not in `taken`. Returns the port.
    pub(super) fn create(
        &self,
        spec: &ClusterSpec,
        taken: &HashSet<u16>,
    ) -> Result<u16, ProvisionError> {
        create_dir(&self.data())?;
        let port = self.port_or_pick(taken)?;
        self.write_spec(spec)?;
        Ok(port)
    }

    /// The recorded port, or a newly chosen one (recorded) when there is none.
    pub(super) fn port_or_pick(&self, taken: &HashSet<u16>) -> Result<u16, ProvisionError> {
        if let Some(port) = self.read_port()? {
            return Ok(port);
        }
        let port = pick_port(taken)?;
        write_atomic(&self.port_file(), port.to_string().as_bytes())?;
        Ok(port)
    }

    /// Removes the directory and everything in it; a missing directory is fine.
    pub(super) fn remove(&self) -> Result<(), ProvisionError> {
        match std::fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("removing", &self.root, &e)),
        }
    }
}

/// Refuses ids that are not a plain directory name, since the id becomes a path component.
pub(super) fn validate_id(id: &str) -> Result<(), ProvisionError> {
    let plain = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        Ok(())
    } else {
        Err(ProvisionError::Local(format!(
            "cluster id {id:?} cannot name a directory: use 1-{MAX_ID_LEN} of A-Z a-z 0-9 - _ ."
        )))
    }
}

/// Asks the kernel for a free loopback port that no other cluster has recorded.
///
/// The port is free now; it is recorded and reused forever, so a later collision (another program
/// taking it while the data plane is down) shows up as a data plane that cannot bind, in its log
/// and in the cluster's state, rather than as a silently moved endpoint.
pub(super) fn pick_port(taken: &HashSet<u16>) -> Result<u16, ProvisionError> {
    for _ in 0..PORT_ATTEMPTS {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| {
            ProvisionError::Local(format!("cannot bind a free port on 127.0.0.1: {e}"))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| ProvisionError::Local(format!("cannot read a bound port: {e}")))?
            .port();
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    Err(ProvisionError::Local(format!(
        "no free loopback port found in {PORT_ATTEMPTS} attempts"
    )))
}

/// Creates a directory and its parents.
pub(super) fn create_dir(path: &Path) -> Result<(), ProvisionError> {
    std::fs::create_dir_all(path).map_err(|e| io_error("creating", path, &e))
}

/// Replaces a file's contents so that a crash leaves either the old or the new contents, never a
/// mix: write a temporary file, fsync it, rename it over the target, fsync the directory.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ProvisionError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error("writing", path, &e)
    })
}

/// A file's bytes, or `None` when it does not exist.
fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, ProvisionError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("reading", path, &e)),
    }
}

/// A [`ProvisionError::Local`] naming what was done to which path.
pub(super) fn io_error(doing: &str, path: &Path, e: &std::io::Error) -> ProvisionError {
    ProvisionError::Local(format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> ClusterSpec {
        ClusterSpec {
            id: id.into(),
            name: "orders".into(),
            org_id: "org-1".into(),
            org_slug: "acme".into(),
            version: "0.1.0".into(),
            replicas: 1,
            storage_bytes: 1 << 30,
            max_ops_per_sec: 100,
            max_stored_bytes: 1 << 30,
            backup_retention_days: 1,
            restore: None,
            suspended: false,
            regions: Vec::new(),
            region: None,
            token_public_key_pem: "-----BEGIN PUBLIC KEY-----\n".into(),
            revocations_url: None,
        }
    }

    #[test]
    fn ids_that_could_escape_the_clusters_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é", &"x".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["c-1", "0b5e4f2a-9d1c-4c8e-8f00-123456789abc", "a.b_c"] {
            assert!(validate_id(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn a_created_cluster_keeps_its_port_and_reads_back_its_spec() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ClusterDir::new(tmp.path(), "c1");
        let port = dir.create(&spec("c1"), &HashSet::new()).unwrap();
        assert!(dir.data().is_dir());
        assert_eq!(dir.read_spec().unwrap(), Some(spec("c1")));
        assert_eq!(
            std::fs::read_to_string(dir.public_key()).unwrap(),
            spec("c1").token_public_key_pem
        );
        // Creating again (an apply after a crash) keeps the port, so the endpoint never moves.
        assert_eq!(dir.create(&spec("c1"), &HashSet::new()).unwrap(), port);
        assert_eq!(dir.read_port().unwrap(), Some(port));
        assert!(!dir.root().join("spec.tmp").exists());

        std::fs::write(dir.port_file(), "nonsense").unwrap();
        let e = dir.read_port().unwrap_err().to_string();
        assert!(e.contains("port"), "{e}");
        dir.remove().unwrap();
        assert!(!dir.root().exists());
        dir.remove().unwrap();
    }

    #[test]
    fn a_picked_port_avoids_the_ones_taken() {
        let first = pick_port(&HashSet::new()).unwrap();
        let second = pick_port(&HashSet::from([first])).unwrap();
        assert_ne!(first, second);
    }
}
