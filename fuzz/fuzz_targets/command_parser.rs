//! The command parser on arbitrary bytes: it never panics, and whatever it
//! accepts survives a round trip through its wire form (`Display`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use maildoor::smtp::command::parse;

fuzz_target!(|line: &[u8]| {
    let Ok(cmd) = parse(line) else {
        return;
    };
    let wire = cmd.to_string();
    assert!(
        !wire.contains(['\r', '\n']),
        "wire form {wire:?} of {cmd:?} has a line break"
    );
    match parse(wire.as_bytes()) {
        Ok(again) => assert_eq!(again, cmd, "round trip through {wire:?} changed the command"),
        Err(e) => panic!("wire form {wire:?} of {cmd:?} does not parse: {e}"),
    }
});
