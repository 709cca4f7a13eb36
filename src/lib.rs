//! maildoor: a small SMTP server that delivers durably into a Maildir.
//!
//! The library is what the binary and the integration tests share: build
//! [`Settings`], [`Server::bind`] them (port 0 works), then [`Server::run`].
//! The protocol core in [`smtp`] is sans-IO; [`session`] and [`server`]
//! only move bytes; [`store`] writes the Maildir; [`mailbox`] reads it back.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// No panic reachable from network or file input (issue 4): tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod bind;
mod bufpool;
pub mod cidr;
pub mod config;
pub mod mailbox;
pub mod proxy;
pub mod route;
pub mod server;
pub mod session;
pub mod smtp;
pub mod store;
pub mod tls;

pub use config::{Overrides, Settings};
pub use server::Server;
pub use store::Maildir;
