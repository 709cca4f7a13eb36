//! One line per message, for `list` and `watch`: a table row for people,
//! or a JSON object for programs.

use std::io::{self, Write};

use serde_json::json;

use super::message::{self, sanitize, Invalid, Summary, UserFilter};
use super::{read_header_block, Entry, Mailbox};

/// A message as `list` shows it: its file facts and decoded headers (or
/// why it could not be read as a message).
#[derive(Debug, Clone)]
pub struct Row {
    /// The file.
    pub entry: Entry,
    /// The decoded headers, or why there are none.
    pub summary: Result<Summary, String>,
}

impl Row {
    /// Reads the header block of `entry`, in `cur/` if another reader
    /// moved it there since the directory was read; `None` when the file
    /// is gone (deleted meanwhile).
    pub fn read(entry: &Entry) -> Option<Row> {
        let summary = match read_header_block(&entry.path) {
            Ok(block) => message::summarize(&block).map_err(|e: Invalid| e.to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Mailbox::moved(entry).and_then(|moved| Row::read(&moved));
            }
            Err(e) => Err(e.to_string()),
        };
        Some(Row {
            entry: entry.clone(),
            summary,
        })
    }

    /// Like [`Row::read`], and warns on `err` when the file is not a
    /// valid message (it is still listed, so it can be deleted).
    pub fn read_warning(entry: &Entry, err: &mut dyn std::io::Write) -> Option<Row> {
        let row = Row::read(entry)?;
        if let Err(why) = &row.summary {
            let _ = writeln!(
                err,
                "maildoor: warning: {}",
                sanitize(
                    &format!("{}: not a valid message: {why}", entry.path.display()),
                    false
                )
            );
        }
        Some(row)
    }

    /// True when the message is for the user `filter` asks for.
    pub fn is_for(&self, filter: &UserFilter) -> bool {
        self.summary.as_ref().is_ok_and(|s| filter.accepts(s))
    }

    /// The date shown: the `Date:` header, else the delivery time.
    fn unix_date(&self) -> i64 {
        let delivered = i64::try_from(self.entry.delivered.0).unwrap_or(i64::MAX);
        self.summary
            .as_ref()
            .ok()
            .and_then(|s| s.date_unix)
            .unwrap_or(delivered)
    }

    /// A table row: short id, date (UTC), from, to, subject, size, status.
    pub fn write_line(&self, out: &mut dyn Write) -> io::Result<()> {
        let e = &self.entry;
        let (from, to, subject) = match &self.summary {
            Ok(s) => (s.from_names.clone(), s.to_addresses.clone(), s.subject.clone()),
            // The reason is in the warning on stderr and in the JSON.
            Err(_) => (String::new(), String::new(), "(not a valid message)".to_string()),
        };
        writeln!(
            out,
            "{:<8} {} {} {} {} {:>8} {}",
            e.short,
            utc(self.unix_date(), false).get(..16).unwrap_or_default(),
            fit(&from, 22),
            fit(&to, 22),
            fit(&subject, 40),
            e.size,
            e.status()
        )
    }

    /// One JSON object on one line.
    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        let e = &self.entry;
        let mut v = json!({
            "id": e.name.queue_id,
            "short": e.short,
            "file": e.name.file,
            "folder": e.folder,
            "status": e.status(),
            "seen": e.name.is_seen(),
            "flags": e.name.flags,
            "size": e.size,
            "delivered": e.delivered.0,
            "date_utc": utc(self.unix_date(), true),
            "valid": self.summary.is_ok(),
        });
        // Every row has the same keys: a file that is not a message has
        // empty header fields and its `error`; a message has `error: null`.
        let (fields, error) = match &self.summary {
            Ok(s) => (serde_json::to_value(s), serde_json::Value::Null),
            Err(why) => (serde_json::to_value(Summary::default()), json!(why)),
        };
        if let (Ok(serde_json::Value::Object(fields)), Some(obj)) = (fields, v.as_object_mut()) {
            obj.extend(fields);
            obj.insert("error".into(), error);
        }
        serde_json::to_writer(&mut *out, &v).map_err(io::Error::other)?;
        writeln!(out)
    }
}

/// `s` sanitised for a terminal, cut or padded to exactly `width`
/// terminal columns (a CJK character takes two, a combining mark none).
fn fit(s: &str, width: usize) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    let s = sanitize(s, false);
    let n = s.width();
    if n <= width {
        return format!("{s}{}", " ".repeat(width - n));
    }
    // Cut to leave one column for the ellipsis, then pad what a wide
    // character at the cut would have left over.
    let mut cut = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width.saturating_sub(1) {
            break;
        }
        cut.push(c);
        used += w;
    }
    cut.push('…');
    used += 1;
    format!("{cut}{}", " ".repeat(width.saturating_sub(used)))
}

/// A Unix time in UTC: `2026-11-25 11:31:31`, or RFC 3339
/// `2026-11-25T11:31:31Z` when `rfc3339`.
pub fn utc(secs: i64, rfc3339: bool) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = date_of(days);
    let (sep, zone) = if rfc3339 { ('T', "Z") } else { (' ', "") };
    format!(
        "{y:04}-{m:02}-{d:02}{sep}{:02}:{:02}:{:02}{zone}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 as a proleptic Gregorian (year, month, day),
/// counting in 400-year cycles of 146 097 days from 0000-03-01.
fn date_of(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // 0000-03-01 to 1970-01-01
    let cycle = shifted.div_euclid(146_097);
    let day_of_cycle = shifted.rem_euclid(146_097);
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year = day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_cycle + cycle * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc(0, true), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_795_606_291, false), "2026-11-25 11:31:31");
        assert_eq!(utc(951_782_400, true), "2000-02-29T00:00:00Z");
        assert_eq!(utc(-1, true), "1969-12-31T23:59:59Z");
    }

    /// An entry for the file `file` in `dir`, delivered at `delivered`.
    fn entry_in(dir: &std::path::Path, file: &str, delivered: u64) -> Entry {
        Entry {
            folder: super::super::Folder::New,
            name: super::super::MessageName::parse(file),
            path: dir.join(file),
            delivered: (delivered, 0),
            size: 0,
            short: "abcdef0".into(),
        }
    }

    #[test]
    fn vanished_files_are_skipped_and_junk_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |file: &str| entry_in(dir.path(), file, 0);
        assert!(Row::read(&entry("gone")).is_none());
        std::fs::write(dir.path().join("junk"), b"no header here").unwrap();
        let row = Row::read(&entry("junk")).unwrap();
        assert!(row.summary.is_err());
        let mut line = Vec::new();
        row.write_line(&mut line).unwrap();
        let line = String::from_utf8(line).unwrap();
        assert!(line.contains("(not a valid message)"), "{line}");
        let mut json = Vec::new();
        row.write_json(&mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["valid"], false);
        assert_eq!(v["error"], "does not start with a header line");
        // The same keys as a message's row.
        let good = Row {
            summary: Ok(Summary::default()),
            ..row
        };
        let mut json = Vec::new();
        good.write_json(&mut json).unwrap();
        let g: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&v), keys(&g));
        assert_eq!(g["error"], serde_json::Value::Null);
    }

    #[test]
    fn unreadable_date_is_dated_by_delivery_like_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let delivered = 1_795_606_291;
        let shown = |file: &str, head: &str| {
            std::fs::write(dir.path().join(file), head).unwrap();
            let row = Row::read(&entry_in(dir.path(), file, delivered)).unwrap();
            let mut line = Vec::new();
            row.write_line(&mut line).unwrap();
            let mut json = Vec::new();
            row.write_json(&mut json).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            (String::from_utf8(line).unwrap(), v)
        };
        let (line, missing) = shown("missing", "Subject: x\n\n");
        assert!(line.contains(" 2026-11-25 11:31 "), "{line}");
        assert_eq!(missing["date"], serde_json::Value::Null);
        for bad in ["not a date", "Jan 2026", "99 Foo 2026"] {
            let (line, v) = shown("bad", &format!("Subject: x\nDate: {bad}\n\n"));
            assert!(line.contains(" 2026-11-25 11:31 "), "{bad}: {line}");
            assert_eq!(v["date"], bad);
            assert_eq!(v["date_unix"], missing["date_unix"], "{bad}");
            assert_eq!(v["date_utc"], missing["date_utc"], "{bad}");
        }
        assert_eq!(missing["date_unix"], serde_json::Value::Null);
        assert_eq!(missing["date_utc"], "2026-11-25T11:31:31Z");
    }

    #[test]
    fn columns_fit() {
        assert_eq!(fit("abc", 5), "abc  ");
        assert_eq!(fit("abcdef", 5), "abcd…");
        assert_eq!(fit("Grüße\x1b", 6), "Grüße\u{FFFD}");
        // Wide characters count two columns, both whole and when cut.
        assert_eq!(fit("日本語", 8), "日本語  ");
        assert_eq!(fit("日本語の件名", 6), "日本… ");
        assert_eq!(fit("日本語の件名", 7), "日本語…");
    }
}
