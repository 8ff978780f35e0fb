//! Where each member of the cluster is reached: its peer address from `--peers`, or from
//! `--peer-template` for a member added later. Nothing else: a member sends its credential and
//! its log only to these addresses, whatever a membership request or the Raft log names, so a
//! caller cannot point the group at a host of its choosing (token theft, requests into the
//! provider's network).

use super::{NodeId, Peers, address_from_template};

/// The configured addresses of every member, present and future.
#[derive(Debug, Clone)]
pub struct Directory {
    peers: Peers,
    template: Option<String>,
}

impl Directory {
    /// The directory of `--peers` and `--peer-template`.
    pub fn new(peers: Peers, template: Option<String>) -> Directory {
        Directory { peers, template }
    }

    /// Member `id`'s peer address: as `--peers` lists it, else from the template.
    pub fn address(&self, id: NodeId) -> Option<String> {
        self.peers.0.get(&id).cloned().or_else(|| {
            self.template
                .as_deref()
                .map(|t| address_from_template(t, id))
        })
    }

    /// Whether `addr` is where member `id` is configured to be.
    pub fn allows(&self, id: NodeId, addr: &str) -> bool {
        let listed = self.peers.0.get(&id).is_some_and(|a| a == addr);
        let templated = self
            .template
            .as_deref()
            .is_some_and(|t| address_from_template(t, id) == addr);
        listed || templated
    }

    /// Whether `addr` is the configured address of some member (one the template gives
    /// included), so records may be copied from it.
    pub fn knows(&self, addr: &str) -> bool {
        self.peers.0.values().any(|a| a == addr)
            || self.template.as_deref().is_some_and(|t| {
                let (prefix, suffix) = t.split_once("{id}").unwrap_or((t, ""));
                addr.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(suffix))
                    .and_then(|id| id.parse::<NodeId>().ok())
                    .is_some_and(|id| address_from_template(t, id) == addr)
            })
    }

    /// Every listed member's address but `me`'s.
    pub fn others(&self, me: NodeId) -> Vec<String> {
        self.peers
            .0
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(_, a)| a.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_addresses_are_allowed() {
        let peers = Peers::parse("0,1=x:9", Some("db-{id}.db-peers.ns.svc:7879")).unwrap();
        let d = Directory::new(peers, Some("db-{id}.db-peers.ns.svc:7879".into()));
        assert_eq!(d.address(0).as_deref(), Some("db-0.db-peers.ns.svc:7879"));
        assert_eq!(d.address(1).as_deref(), Some("x:9"));
        assert_eq!(d.address(7).as_deref(), Some("db-7.db-peers.ns.svc:7879"));
        assert!(d.allows(1, "x:9"));
        assert!(d.allows(1, "db-1.db-peers.ns.svc:7879"), "the template too");
        assert!(d.allows(5, "db-5.db-peers.ns.svc:7879"));
        assert!(!d.allows(5, "db-6.db-peers.ns.svc:7879"), "another id's");
        assert!(!d.allows(0, "x:9"));
        assert!(!d.allows(2, "169.254.169.254:80"));
        assert!(!d.allows(2, "db-2.db-peers.ns.svc:7878"), "the client port");
        assert!(d.knows("db-12.db-peers.ns.svc:7879") && d.knows("x:9"));
        for foreign in [
            "db-x.db-peers.ns.svc:7879",
            "db-1.db-peers.ns.svc:7879.evil.com:80",
            "evil:1",
            "db-01.db-peers.ns.svc:7879",
        ] {
            assert!(!d.knows(foreign), "{foreign}");
        }
        let plain = Directory::new(Peers::parse("1=a:1,2=b:2", None).unwrap(), None);
        assert_eq!(plain.address(3), None);
        assert!(!plain.allows(3, "c:3") && !plain.knows("c:3"));
        assert_eq!(plain.others(1), ["b:2"]);
    }
}
