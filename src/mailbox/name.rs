//! Maildir file names, read back: the unique part, the queue id maildoor
//! put in it, the `,S=<size>` hint, the `:2,<flags>` info, and the short
//! ids that `maildoor mailbox list` prints.
//!
//! maildoor names a message `<secs>.M<usec>P<pid>Q<n>.<host>,S=<size>`
//! (see `store::maildir`); a reader marks it seen by moving it to `cur/`
//! with `:2,S` appended (the Maildir convention of qmail and Dovecot, with
//! flags kept in ASCII order). Names written by other programs are read
//! too: whatever precedes the `:` is their unique part.

/// The separator between a file name's unique part and its info.
const INFO_SEP: char = ':';

/// What a Maildir file name says about its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageName {
    /// The whole file name.
    pub file: String,
    /// The part before `:` (unique across the Maildir).
    pub unique: String,
    /// The queue id: `<secs>.M<usec>P<pid>Q<n>` for names maildoor wrote,
    /// otherwise the unique part itself.
    pub queue_id: String,
    /// Delivery time as (seconds, microseconds) when the name says it.
    pub time: Option<(u64, u32)>,
    /// Per-process counter `Q<n>`, when present (orders messages
    /// delivered in the same microsecond).
    pub counter: Option<u64>,
    /// The size from `,S=<size>`, when present.
    pub size: Option<u64>,
    /// The flags from `:2,<flags>` (deduplicated, ASCII order).
    pub flags: String,
}

/// The unique part of a Maildir file name: all before the `:` of its
/// info (`:2,<flags>`), which readers change as they flag it.
pub fn unique_part(file: &str) -> &str {
    file.split_once(INFO_SEP).map_or(file, |(unique, _)| unique)
}

impl MessageName {
    /// Reads a file name. Never fails: a name in no known format still has
    /// a unique part (the whole name) and no flags.
    pub fn parse(file: &str) -> MessageName {
        let unique = unique_part(file);
        let info = file.split_once(INFO_SEP).map(|(_, info)| info);
        let flags = info
            .and_then(|i| i.strip_prefix("2,"))
            .map(sorted_flags)
            .unwrap_or_default();
        let size = unique
            .split(',')
            .skip(1)
            .find_map(|field| field.strip_prefix("S="))
            .and_then(|s| s.parse::<u64>().ok());
        let (queue_id, time, counter) = match parse_maildoor_id(unique) {
            Some((id, secs, usec, n)) => (id.to_string(), Some((secs, usec)), Some(n)),
            None => {
                // Other deliverers (Dovecot, qmail, getmail) also start with
                // the seconds.
                let secs = unique.split('.').next().and_then(|s| s.parse::<u64>().ok());
                (unique.to_string(), secs.map(|s| (s, 0)), None)
            }
        };
        MessageName {
            file: file.to_string(),
            unique: unique.to_string(),
            queue_id,
            time,
            counter,
            size,
            flags,
        }
    }

    /// True when the flags hold `S` (seen).
    pub fn is_seen(&self) -> bool {
        self.flags.contains('S')
    }

    /// The name this message has in `cur/` once `flag` is set: the unique
    /// part, then `:2,` and the flags in ASCII order, `flag` among them.
    pub fn with_flag(&self, flag: char) -> String {
        let mut flags = self.flags.clone();
        flags.push(flag);
        format!("{}{INFO_SEP}2,{}", self.unique, sorted_flags(&flags))
    }
}

/// The leading `<secs>.M<usec>P<pid>Q<n>` of a name maildoor wrote, with
/// its numbers; `None` for any other shape.
fn parse_maildoor_id(unique: &str) -> Option<(&str, u64, u32, u64)> {
    let (secs_text, rest) = unique.split_once('.')?;
    // A host must follow: the queue id is only the part before it.
    let (middle, _host) = rest.split_once('.')?;
    let secs = digits(secs_text)?;
    let (usec, rest) = middle.strip_prefix('M')?.split_once('P')?;
    let (pid, n) = rest.split_once('Q')?;
    let usec = u32::try_from(digits(usec)?).ok()?;
    digits(pid)?;
    let n = digits(n)?;
    let id = unique.get(..secs_text.len() + 1 + middle.len())?;
    Some((id, secs, usec, n))
}

/// Parses a non-empty run of ASCII digits.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Flags in ASCII order without repeats; only printable ASCII letters
/// count (the Maildir spec's flags are letters).
fn sorted_flags(flags: &str) -> String {
    let mut v: Vec<char> = flags.chars().filter(char::is_ascii_alphabetic).collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().collect()
}

/// A 64-bit FNV-1a hash of a file name's unique part, as 16 hex digits:
/// the stable root of the short id (it does not change when other
/// messages come and go, nor when the message is read and moves to
/// `cur/`). The unique part, not the queue id: two hosts' deliveries into
/// one Maildir may share a queue id, never a unique part.
pub fn hash_hex(unique: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in unique.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Shortest short id printed (like git's abbreviated hashes).
pub const SHORT_MIN: usize = 7;

/// For each hash (16 hex digits), the shortest prefix of at least
/// [`SHORT_MIN`] digits that no other hash in `hashes` shares. Returned in
/// the order given.
pub fn short_ids(hashes: &[String]) -> Vec<String> {
    let mut order: Vec<usize> = (0..hashes.len()).collect();
    order.sort_by(|&a, &b| hashes.get(a).cmp(&hashes.get(b)));
    let mut len = vec![SHORT_MIN; hashes.len()];
    for pair in order.windows(2) {
        if let [a, b] = *pair {
            let (Some(ha), Some(hb)) = (hashes.get(a), hashes.get(b)) else {
                continue;
            };
            let common = ha.bytes().zip(hb.bytes()).take_while(|(x, y)| x == y).count();
            for i in [a, b] {
                if let Some(l) = len.get_mut(i) {
                    *l = (*l).max(common + 1);
                }
            }
        }
    }
    hashes
        .iter()
        .zip(len)
        .map(|(h, l)| h.get(..l).unwrap_or(h).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_maildoor_names() {
        let n = MessageName::parse("1795606291.M586647P9934Q0.mx.test,S=220");
        assert_eq!(n.queue_id, "1795606291.M586647P9934Q0");
        assert_eq!(n.unique, "1795606291.M586647P9934Q0.mx.test,S=220");
        assert_eq!(n.time, Some((1_795_606_291, 586_647)));
        assert_eq!(n.counter, Some(0));
        assert_eq!(n.size, Some(220));
        assert_eq!(n.flags, "");
        assert!(!n.is_seen());

        let n = MessageName::parse("1795606291.M5P1Q12.host\\072x,S=9:2,SF");
        assert_eq!(n.queue_id, "1795606291.M5P1Q12");
        assert_eq!(n.counter, Some(12));
        assert_eq!(n.size, Some(9));
        assert_eq!(n.flags, "FS");
        assert!(n.is_seen());
    }

    #[test]
    fn reads_other_names() {
        let n = MessageName::parse("1700000000.12345_1.other:2,");
        assert_eq!(n.queue_id, "1700000000.12345_1.other");
        assert_eq!(n.time, Some((1_700_000_000, 0)));
        assert_eq!(n.size, None);
        for odd in ["", "x", "..", "1.M.Q", "1.MxPyQz.h", "1.M1P2Q3", ":2,S", "a:b:c"] {
            let n = MessageName::parse(odd);
            assert_eq!(n.file, odd);
            assert!(n.counter.is_none(), "{odd}");
        }
        assert_eq!(MessageName::parse(":2,S").unique, "");
    }

    #[test]
    fn seen_flag_is_added_in_order() {
        let n = MessageName::parse("1.M2P3Q4.h,S=5");
        assert_eq!(n.with_flag('S'), "1.M2P3Q4.h,S=5:2,S");
        let n = MessageName::parse("1.M2P3Q4.h,S=5:2,FT");
        assert_eq!(n.with_flag('S'), "1.M2P3Q4.h,S=5:2,FST");
        let n = MessageName::parse("1.M2P3Q4.h,S=5:2,RS");
        assert_eq!(n.with_flag('S'), "1.M2P3Q4.h,S=5:2,RS");
        let n = MessageName::parse("1.M2P3Q4.h:2,a");
        assert_eq!(n.with_flag('S'), "1.M2P3Q4.h:2,Sa");
        // Info in another version is replaced by version 2.
        let n = MessageName::parse("1.M2P3Q4.h:1,xyz");
        assert_eq!(n.with_flag('S'), "1.M2P3Q4.h:2,S");
    }

    #[test]
    fn short_ids_are_unique_prefixes() {
        let hashes: Vec<String> = ["abcdef0123456789", "abcdef0923456789", "0123456789abcdef"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let ids = short_ids(&hashes);
        assert_eq!(ids, ["abcdef01", "abcdef09", "0123456"]);
        assert_eq!(
            short_ids(&["aaaa".to_string(), "aaaa".to_string()]),
            ["aaaa", "aaaa"]
        );
        assert!(short_ids(&[]).is_empty());
        let h = hash_hex("1795606291.M586647P9934Q0");
        assert_eq!(h.len(), 16);
        assert_eq!(h, hash_hex("1795606291.M586647P9934Q0"));
        assert_ne!(h, hash_hex("1795606291.M586647P9934Q1"));
    }

    proptest::proptest! {
        /// Any file name reads without a panic and keeps its unique part.
        #[test]
        fn any_name_reads(file in "[0-9.MPQ:,S=a-z\\\\x{e9}]{0,40}") {
            let n = MessageName::parse(&file);
            proptest::prop_assert!(file.starts_with(&n.unique));
            proptest::prop_assert!(n.with_flag('S').starts_with(&n.unique));
            let _ = short_ids(&[hash_hex(&n.queue_id), hash_hex(&file)]);
        }
    }
}
