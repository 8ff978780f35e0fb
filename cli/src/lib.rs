//! `koru`, the command-line client of KoruDelta Cloud: the command tree ([`args`]), profiles in
//! a config file ([`config`]), an API client that refreshes sessions ([`client`]), output as
//! table, JSON or YAML ([`output`]), and one module per group of commands ([`commands`]).

#![warn(missing_docs)]

pub mod args;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod output;
pub mod wait;
