//! The sequential model the linearizability checks hold histories to (real processes in
//! `tests/raft/linearizability.rs`, the simulated cluster in `tests/raft_sim.rs`): one key as a
//! register with compare-and-set.

use stateright::semantics::SequentialSpec;

/// An operation on one key, as the checker models it. Every write puts a value no other write
/// puts, so a version stands for the value written with it: `Cas(expected, new)` writes `new`
/// only if the key still holds the version that holds `expected`.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Read,
    Write(u64),
    Cas(u64, u64),
}

/// What an [`Op`] returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Ret {
    ReadOk(u64),
    WriteOk,
    CasOk,
    CasFailed,
}

/// A register with compare-and-set; 0 is the key before any write.
#[derive(Debug, Clone)]
pub struct CasRegister(pub u64);

impl SequentialSpec for CasRegister {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match *op {
            Op::Read => Ret::ReadOk(self.0),
            Op::Write(v) => {
                self.0 = v;
                Ret::WriteOk
            }
            Op::Cas(expected, new) if self.0 == expected => {
                self.0 = new;
                Ret::CasOk
            }
            Op::Cas(..) => Ret::CasFailed,
        }
    }
}
