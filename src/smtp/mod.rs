//! The sans-IO SMTP core: parser, replies, state machine, DATA decoder.
//! Nothing here performs I/O; the session driver feeds it bytes and events.

pub mod command;
pub mod data;
pub mod idna;
pub mod reply;
pub mod state;
