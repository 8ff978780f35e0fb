//! The last-writer-wins register: a value and the clock it was written at.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Hlc;

/// A register's state (stored as `{"hlc": {"t", "r"}, "value": …}`, the value byte for byte).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RegisterState {
    /// When and where the value was written.
    pub(crate) hlc: Hlc,
    /// The value.
    pub(crate) value: Box<RawValue>,
}

impl PartialEq for RegisterState {
    fn eq(&self, other: &Self) -> bool {
        self.hlc == other.hlc && self.value.get() == other.value.get()
    }
}

impl Eq for RegisterState {}

impl RegisterState {
    /// The join: the later clock wins; equal clocks (one write seen twice, in practice) keep
    /// the greater text so either order gives the same answer.
    pub(crate) fn merge(self, other: RegisterState) -> RegisterState {
        let mine = (&self.hlc, self.value.get());
        let theirs = (&other.hlc, other.value.get());
        if theirs > mine { other } else { self }
    }
}
