//! The audit log: an append-only, hash-chained record of every state-changing request and every
//! login, with signed digests so a customer can check an export without trusting our database.
//!
//! # What is recorded
//! [`middleware::record`] runs around every routed POST, PUT, PATCH and DELETE (logins and
//! sign-ups included) and appends one event after the handler: time, actor, organization,
//! source IP, action (method + route template), target (the concrete path, never the query
//! string), outcome (`success` for 2xx/3xx, else `failure:<status>`) and request id. The actor
//! is `user:<id>` or `token:<id>` from the [`Principal`](crate::http::principal::Principal)
//! extractor, or `email:<address>` for a sign-up or login attempt that did not succeed; handlers
//! report it (and an organization not in the path) through the request's [`AuditSlot`].
//! Passwords, tokens and request bodies are never recorded. The organization is the one the
//! path's `{org}` names, as the tenant extractor ([`OrgAccess`](crate::http::principal::OrgAccess))
//! found it before checking the caller's access (the middleware looks it up itself only when
//! the extractor did not run, e.g. for a 401 or a route without it); an outsider's refused
//! attempt on an organization is in that organization's log.
//!
//! # Failure policy
//! The event is appended after the handler, in a task of its own (a client hanging up cannot
//! cancel it), and the response waits for it. If the append fails the change has already
//! happened, so the response is still sent; the failure is logged at error level and counted
//! ([`store::append_failures`]). Events without an organization (logins, failed sign-ups) are in
//! the global chain only.
//!
//! # Chains
//! Every event is in the *global* chain (`seq`, `prev_hash`, `hash`); an event with an
//! organization is also in that organization's chain (`org_seq`, `org_prev_hash`, `org_hash`),
//! so one organization's events form a self-contained chain its admins can export and check.
//! A link's hash is SHA-256 over [`chain::canonical_bytes`]: a domain tag, seq, prev_hash and
//! the [`Record`] fields, each as `0x01 ‖ u32 BE length ‖ UTF-8` (null as `0x00`); the first
//! link's prev_hash is [`chain::GENESIS_HASH`]. Appends are serialized in-process by a mutex,
//! and across replicas by the unique `seq` and `(org_id, org_seq)` columns plus a retry.
//! Nothing updates or deletes events; in production the database role should have only INSERT
//! and SELECT on `audit_events`.
//!
//! # Digests
//! Every [`digest::DIGEST_INTERVAL`] (and before every export) the head of each chain that has
//! grown is signed with the control plane's session key (Ed25519) into `audit_digests`: see
//! [`digest::message`]. Signing a head is idempotent, so replicas may all do it. Verification
//! ([`verify::verify`], `GET /api/v1/orgs/{org}/audit/verify`, `koru-controlplane audit verify`)
//! walks a chain and reports the first link whose position, prev_hash, hash, or digest is wrong.
//! Rewriting the chain after a digest needs the private key; an export carries its digests, and
//! [`export::verify_export`] (`koru-controlplane audit verify-export`) checks it offline against
//! the public key from `GET /api/v1/audit/public-key`. Digests signed by a previous key verify
//! only when that key is passed to the CLI.

pub mod chain;
pub mod cli;
pub mod digest;
pub mod export;
pub mod middleware;
pub mod store;
pub mod verify;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use chain::{BrokenLink, Record};
pub use middleware::AuditSlot;

use crate::error::{Error, Result};

/// A link of a chain: its position, the previous link's hash and its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Link {
    /// Position, from 1.
    pub seq: i64,
    /// Hash of the previous link.
    pub prev_hash: String,
    /// Hash of this link.
    pub hash: String,
}

/// An event as stored: what happened, its link in the global chain, and its link in its
/// organization's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// What happened.
    pub record: Record,
    /// Its link in the global chain.
    pub global: Link,
    /// Its link in its organization's chain, when it has an organization.
    pub org: Option<Link>,
}

impl StoredEvent {
    /// The event as its organization sees it.
    pub fn into_org_event(self) -> Result<OrgEvent> {
        let link = self.org.ok_or_else(|| {
            Error::Internal(format!(
                "audit event {} has no organization link",
                self.record.id
            ))
        })?;
        Ok(OrgEvent {
            record: self.record,
            seq: link.seq,
            prev_hash: link.prev_hash,
            hash: link.hash,
        })
    }
}

/// An event as an organization sees it: `seq`, `prev_hash` and `hash` are its link in the
/// organization's own chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrgEvent {
    /// What happened.
    #[serde(flatten)]
    pub record: Record,
    /// Position in the organization's chain, from 1.
    pub seq: i64,
    /// Hash of the organization's previous event.
    pub prev_hash: String,
    /// Hash of this event in the organization's chain.
    pub hash: String,
}

impl OrgEvent {
    /// Its link in the organization's chain.
    pub fn link(&self) -> Link {
        Link {
            seq: self.seq,
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }
}

/// Which events a query returns; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Exact action, e.g. `POST /api/v1/orgs/{org}/tokens`.
    pub action: Option<String>,
    /// Exact actor, e.g. `user:<id>`.
    pub actor: Option<String>,
    /// `success`, `failure` (any failure) or `failure:<status>`.
    pub outcome: Option<String>,
    /// Events at or after this time (ms).
    pub since: Option<i64>,
    /// Events before this time (ms).
    pub until: Option<i64>,
}

impl Filter {
    /// Checks the outcome's form and the time range.
    pub fn validate(&self) -> Result<()> {
        if let Some(outcome) = &self.outcome {
            let valid = outcome == "success"
                || outcome == "failure"
                || outcome
                    .strip_prefix("failure:")
                    .is_some_and(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()));
            if !valid {
                return Err(Error::BadRequest(format!(
                    "outcome must be success, failure or failure:<status>, not {outcome:?}"
                )));
            }
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since > until
        {
            return Err(Error::BadRequest("since must not be after until".into()));
        }
        Ok(())
    }

    /// Whether any condition is set.
    pub fn is_set(&self) -> bool {
        *self != Filter::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_filters_are_checked() {
        for ok in ["success", "failure", "failure:401"] {
            let f = Filter {
                outcome: Some(ok.into()),
                ..Filter::default()
            };
            assert!(f.validate().is_ok(), "{ok}");
        }
        for bad in ["ok", "failure:", "failure:4011", "failure:abc"] {
            let f = Filter {
                outcome: Some(bad.into()),
                ..Filter::default()
            };
            assert!(matches!(f.validate(), Err(Error::BadRequest(_))), "{bad}");
        }
        let backwards = Filter {
            since: Some(2),
            until: Some(1),
            ..Filter::default()
        };
        assert!(matches!(backwards.validate(), Err(Error::BadRequest(_))));
    }
}
