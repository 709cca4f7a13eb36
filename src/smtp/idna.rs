//! Internationalized domain names as SMTP needs them: one ASCII form
//! (A-labels, RFC 5890 §2.3.2.1) to compare names by and to show them in
//! replies and headers, whichever form (U-labels or A-labels) a client or
//! the configuration wrote them in (RFC 6531 §3.2 lets clients use
//! either). Per-recipient Maildirs keep the configured spelling (see
//! `route::mailbox_key`).

/// The key a domain is compared by: A-labels, in ASCII lower case.
/// `Bücher.Example` and `xn--bcher-kva.example` have the same key.
pub fn domain_key(name: &str) -> String {
    a_labels(name).to_ascii_lowercase()
}

/// `s` in lower case, character by character: unlike `str::to_lowercase`
/// a capital sigma is always `σ`, wherever it stands, so a name has one
/// lower-case form however it is cut up.
pub fn lower(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// `name` with each non-ASCII label (lower-cased) written as its A-label,
/// `xn--` and the label's Punycode (RFC 3492): `bücher.example` becomes
/// `xn--bcher-kva.example`.
pub fn a_labels(name: &str) -> String {
    let labels: Vec<String> = name
        .split('.')
        .map(|label| {
            if label.is_ascii() {
                return label.to_string();
            }
            // Lower case first: some characters become ASCII (KELVIN SIGN
            // is `k`), and an all-ASCII label has no A-label.
            let lower = lower(label);
            if lower.is_ascii() {
                lower
            } else {
                format!("xn--{}", punycode(&lower))
            }
        })
        .collect();
    labels.join(".")
}

/// The Punycode of `label` (RFC 3492 §6.3): its ASCII characters, a `-`
/// if there were any, then the other code points as variable-length
/// base-36 deltas.
fn punycode(label: &str) -> String {
    const BASE: u32 = 36;
    const T_MIN: u32 = 1;
    const T_MAX: u32 = 26;
    fn adapt(delta: u32, points: u32, first: bool) -> u32 {
        let mut delta = if first { delta / 700 } else { delta / 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - T_MIN) * T_MAX) / 2 {
            delta /= BASE - T_MIN;
            k += BASE;
        }
        k + (BASE - T_MIN + 1) * delta / (delta + 38)
    }
    fn digit(d: u32) -> char {
        // 0-25 are a-z, 26-35 are 0-9.
        char::from(if d < 26 {
            b'a' + d as u8
        } else {
            b'0' + (d - 26) as u8
        })
    }
    let points: Vec<u32> = label.chars().map(u32::from).collect();
    let mut out: String = label.chars().filter(char::is_ascii).collect();
    let basic = out.len() as u32;
    if basic > 0 {
        out.push('-');
    }
    let (mut n, mut delta, mut bias, mut handled) = (128u32, 0u32, 72u32, basic);
    while (handled as usize) < points.len() {
        let Some(&m) = points.iter().filter(|&&c| c >= n).min() else {
            break;
        };
        // A DNS label is at most 63 octets, so these sums stay small; a
        // longer name saturates rather than wraps.
        delta = delta.saturating_add((m - n).saturating_mul(handled + 1));
        n = m;
        for &c in &points {
            if c < n {
                delta = delta.saturating_add(1);
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = k.saturating_sub(bias).clamp(T_MIN, T_MAX);
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.saturating_add(1);
        n += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punycode_matches_the_rfc_samples() {
        // RFC 3492 §7.1 samples and the usual ones.
        for (label, want) in [
            ("bücher", "bcher-kva"),
            ("münchen", "mnchen-3ya"),
            ("ü", "tda"),
            ("他们为什么不说中文", "ihqwcrb4cv8a8dqg056pqjye"),
            ("pročprostěnemluvíčesky", "proprostnemluvesky-uyb24dma41a"),
        ] {
            assert_eq!(punycode(label), want, "{label}");
        }
        assert_eq!(a_labels("Bücher.Example"), "xn--bcher-kva.Example");
        assert_eq!(a_labels("\u{212A}.example"), "k.example");
    }

    #[test]
    fn both_forms_of_a_name_have_one_key() {
        for name in [
            "bücher.example",
            "BÜCHER.example",
            "xn--bcher-kva.example",
            "XN--BCHER-KVA.Example",
        ] {
            assert_eq!(domain_key(name), "xn--bcher-kva.example", "{name}");
        }
        assert_eq!(domain_key("Mail.Example.ORG"), "mail.example.org");
        // A capital sigma has one lower case, wherever it stands.
        assert_eq!(domain_key("ΑΣ.example"), domain_key("ασ.example"));
        assert_eq!(lower("ΑΣ.Example"), "ασ.example");
    }
}
