//! Binary encodings of replication's hot path: the payload of a Raft log entry and the
//! AppendEntries RPC body, in MessagePack (rmp-serde, fields by name) instead of JSON. A value
//! is JSON text inside a command, which JSON must escape and unescape on every pass (an entry
//! is encoded or decoded about ten times between the leader's log, the replication streams and
//! each member's log and state machine); MessagePack copies it as it is.
//!
//! Entries written before this encoding are JSON, and stay readable: a MessagePack payload
//! starts with [`PAYLOAD_MSGPACK`], a byte JSON text never starts with (see `FORMAT.md`, Raft
//! log). A member that does not accept MessagePack bodies answers 415, and the caller falls
//! back to JSON for it (a rolling upgrade).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The media type of a MessagePack RPC body.
pub const MSGPACK: &str = "application/msgpack";

/// First byte of a MessagePack log payload; a JSON payload starts with `{` or `"`.
pub const PAYLOAD_MSGPACK: u8 = 0x01;

/// Why a body or payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Encoding as MessagePack failed.
    #[error("encoding MessagePack: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The bytes are not the MessagePack of the expected type.
    #[error("decoding MessagePack: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// Encoding as JSON failed, or the bytes are not the JSON of the expected type.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How a member-to-member RPC body goes over the wire, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// JSON: every RPC of members of earlier versions, and the RPCs off the hot path.
    Json,
    /// MessagePack ([`MSGPACK`]): AppendEntries to members that take it.
    MessagePack,
}

impl Encoding {
    /// The body's media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::MessagePack => MSGPACK,
        }
    }

    /// `value` as a body.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        match self {
            Encoding::Json => Ok(serde_json::to_vec(value)?),
            Encoding::MessagePack => to_msgpack(value),
        }
    }

    /// The value of a body.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Encoding::Json => Ok(serde_json::from_slice(bytes)?),
            Encoding::MessagePack => from_msgpack(bytes),
        }
    }
}

/// `value` as MessagePack with named fields (so `flatten`, defaults and skipped fields behave
/// as in JSON).
pub fn to_msgpack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// The value of MessagePack `bytes`.
pub fn from_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// A log entry's payload as stored: [`PAYLOAD_MSGPACK`] then its MessagePack.
pub fn encode_payload<T: Serialize + ?Sized>(payload: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(128);
    out.push(PAYLOAD_MSGPACK);
    rmp_serde::encode::write_named(&mut out, payload)?;
    Ok(out)
}

/// A stored payload: MessagePack after its marker byte, or JSON (entries written before).
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&PAYLOAD_MSGPACK, rest)) => from_msgpack(rest),
        _ => Ok(serde_json::from_slice(bytes)?),
    }
}

#[cfg(test)]
mod tests {
    use openraft::{EntryPayload, Membership};
    use serde_json::value::RawValue;

    use super::*;
    use crate::raft::{Command, Request, TypeConfig};
    use crate::store::{Cause, WriteMeta, WriteOp};

    fn command(author: Option<&str>) -> Command {
        let ops = vec![
            WriteOp::put(
                "ns",
                "k\"1",
                RawValue::from_string(r#"{"n":1,"s":"a\"b\u00e9"}"#.into()).unwrap(),
            ),
            WriteOp::delete("ns", "gone"),
        ];
        let meta = WriteMeta::by(author.map(Into::into)).because(Cause::Rewind);
        Command::new(&ops, 42, meta)
    }

    fn payloads() -> Vec<EntryPayload<TypeConfig>> {
        let members = std::collections::BTreeMap::from([
            (1, openraft::BasicNode::new("a:1")),
            (2, openraft::BasicNode::new("b:2")),
        ]);
        vec![
            EntryPayload::Blank,
            EntryPayload::Normal(Request::Write(command(Some("ada")))),
            EntryPayload::Normal(Request::Writes(vec![command(None), command(Some("x"))])),
            EntryPayload::Normal(Request::Seal),
            EntryPayload::Normal(Request::Base(crate::raft::Base {
                lsn: 9,
                last_micros: 10,
                source: "a:1".into(),
            })),
            EntryPayload::Membership(Membership::new(vec![[1, 2].into()], members)),
        ]
    }

    #[test]
    fn every_payload_round_trips_through_messagepack() {
        for p in payloads() {
            let bytes = encode_payload(&p).unwrap();
            assert_eq!(bytes[0], PAYLOAD_MSGPACK);
            let back: EntryPayload<TypeConfig> = decode_payload(&bytes).unwrap();
            assert_eq!(format!("{back:?}"), format!("{p:?}"));
        }
    }

    #[test]
    fn json_payloads_written_before_stay_readable() {
        for p in payloads() {
            let json = serde_json::to_vec(&p).unwrap();
            assert!(matches!(json[0], b'{' | b'"'), "JSON starts with {{ or \"");
            let back: EntryPayload<TypeConfig> = decode_payload(&json).unwrap();
            assert_eq!(format!("{back:?}"), format!("{p:?}"));
        }
        // As an older member wrote them (no author or cause fields).
        let old = br#"{"Normal":{"Write":{"proposed_micros":1,"ops":[{"delete":false,"namespace":"n","key":"k","value":"{\"a\":1}"}]}}}"#;
        let back: EntryPayload<TypeConfig> = decode_payload(old).unwrap();
        let EntryPayload::Normal(Request::Write(cmd)) = back else {
            panic!("expected a write, got {back:?}");
        };
        assert_eq!(cmd.meta, WriteMeta::default());
        assert_eq!(cmd.ops[0].value.as_deref(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn messagepack_is_smaller_than_json_for_commands() {
        let p = EntryPayload::<TypeConfig>::Normal(Request::Writes(vec![command(None); 8]));
        let (mp, json) = (encode_payload(&p).unwrap(), serde_json::to_vec(&p).unwrap());
        assert!(mp.len() < json.len(), "{} >= {}", mp.len(), json.len());
        assert!(decode_payload::<EntryPayload<TypeConfig>>(&[PAYLOAD_MSGPACK, 0xc1]).is_err());
    }
}
