//! HTML made readable as plain text, for `mailbox show` of a message that
//! has no text/plain part. Not a renderer: tags go, block-level tags and
//! `<br>` become line breaks, list items get a dash, a link's address
//! follows its text, `<script>`, `<style>`, `<head>` and comments are
//! dropped, an image is its `alt` text in brackets, and character
//! references (HTML 4's names, numbers) are decoded. Runs of white space collapse as a
//! browser would collapse them, except inside `<pre>`.

/// Tags that start and end a paragraph (a blank line around them).
const PARAGRAPHS: [&str; 14] = [
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "table",
    "ul",
    "ol",
    "dl",
    "hr",
];

/// Tags that start and end a line.
const LINES: [&str; 9] = [
    "div", "tr", "li", "dt", "dd", "section", "article", "header", "footer",
];

/// Elements whose content is not text for a reader.
const HIDDEN: [&str; 4] = ["script", "style", "head", "title"];

/// The text of `html`.
pub fn to_text(html: &str) -> String {
    let mut out = Text::default();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_text(rest.get(..lt).unwrap_or_default());
        rest = rest.get(lt..).unwrap_or_default();
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after
                .find("-->")
                .map_or("", |end| after.get(end + 3..).unwrap_or_default());
            continue;
        }
        let Some(gt) = tag_end(rest) else {
            // A '<' that opens no tag is text.
            out.push_text(rest);
            rest = "";
            break;
        };
        let tag = Tag::parse(rest.get(1..gt).unwrap_or_default());
        rest = rest.get(gt + 1..).unwrap_or_default();
        if !tag.closing && HIDDEN.contains(&tag.name.as_str()) {
            // Skip to the matching close tag (or the end).
            let close = format!("</{}", tag.name);
            rest = match find_ignoring_case(rest, &close) {
                Some(at) => {
                    let from = rest.get(at..).unwrap_or_default();
                    from.find('>')
                        .map_or("", |g| from.get(g + 1..).unwrap_or_default())
                }
                None => "",
            };
            continue;
        }
        out.tag(&tag);
    }
    out.push_text(rest);
    out.finish()
}

/// Where `needle` (lower case ASCII, starting with `<`) first occurs in
/// `text`, ignoring ASCII case; without copying `text`, so that many
/// hidden elements cost one pass each over what they hide.
fn find_ignoring_case(text: &str, needle: &str) -> Option<usize> {
    let (hay, pat) = (text.as_bytes(), needle.as_bytes());
    memchr::memchr_iter(b'<', hay).find(|&at| {
        hay.get(at..at + pat.len())
            .is_some_and(|cand| cand.eq_ignore_ascii_case(pat))
    })
}

/// One tag: its lower-case name, whether it closes, and its `href` (of a
/// link) or `alt` (of an image).
struct Tag {
    name: String,
    closing: bool,
    href: Option<String>,
    alt: Option<String>,
}

impl Tag {
    fn parse(inner: &str) -> Tag {
        let inner = inner.trim();
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, inner),
        };
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let href = (name == "a" && !closing)
            .then(|| attribute(inner, "href"))
            .flatten();
        let alt = (name == "img").then(|| attribute(inner, "alt")).flatten();
        Tag {
            name,
            closing,
            href,
            alt,
        }
    }
}

/// The value of attribute `name` in a tag's inside, quoted or not.
/// Where the tag that `text` starts with ends (its `>`), skipping a `>`
/// inside a quoted attribute value (`title="a>b"`).
fn tag_end(text: &str) -> Option<usize> {
    #[derive(Clone, Copy)]
    enum At {
        Tag,
        AfterEquals,
        Quoted(u8),
    }
    let mut at = At::Tag;
    for (i, b) in text.bytes().enumerate() {
        at = match (at, b) {
            (At::Tag, b'>') => return Some(i),
            (At::Tag, b'=') => At::AfterEquals,
            (At::AfterEquals, b' ' | b'\t' | b'\n' | b'\r') => At::AfterEquals,
            (At::AfterEquals, q @ (b'"' | b'\'')) => At::Quoted(q),
            (At::AfterEquals, b'>') => return Some(i),
            (At::Quoted(q), c) if c == q => At::Tag,
            (At::Quoted(q), _) => At::Quoted(q),
            (_, _) => At::Tag,
        };
    }
    None
}

fn attribute(inner: &str, name: &str) -> Option<String> {
    let lower = inner.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower.get(from..).and_then(|l| l.find(name)).map(|i| i + from) {
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes().get(at - 1).is_some_and(u8::is_ascii_whitespace);
        let rest = inner.get(from..).unwrap_or_default().trim_start();
        let Some(value) = rest.strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let v = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value.get(1..).and_then(|v| v.split(q).next()),
            _ => value.split(|c: char| c.is_ascii_whitespace()).next(),
        };
        return v.map(|v| decode_entities(v, true));
    }
    None
}

/// Decodes character references: HTML 4's named ones and `&#N;` /
/// `&#xH;`. As browsers do, the Latin-1 names (`&copy`, `&amp`...) and
/// numbers also count without their `;` (except, in an attribute value,
/// before a letter, digit or `=` after a name: `?a=1&copy=2` is an
/// address). Anything else stays as written.
fn decode_entities(s: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        rest = rest.get(amp..).unwrap_or_default();
        // Only the next few octets: a text full of `&` must not be read
        // to its end once per `&`.
        let semi = rest.bytes().take(11).position(|b| b == b';');
        let decoded = semi
            .and_then(|i| entity(rest.get(1..i).unwrap_or_default()).map(|c| (c, i + 1)))
            .or_else(|| {
                unterminated(rest.get(1..).unwrap_or_default(), in_attribute).map(|(c, n)| (c, n + 1))
            });
        match decoded {
            Some((c, used)) => {
                out.push(c);
                rest = rest.get(used..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = rest.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// A reference without its `;` at the start of `after` (what follows the
/// `&`): a number, or the longest Latin-1 name (HTML's legacy set) that
/// `after` starts with. Returns the character and the octets it used.
fn unterminated(after: &str, in_attribute: bool) -> Option<(char, usize)> {
    let named = !after.starts_with('#');
    let (c, used) = if let Some(num) = after.strip_prefix('#') {
        let (hex, digits) = match num.strip_prefix(['x', 'X']) {
            Some(h) => (true, h),
            None => (false, num),
        };
        let len = digits
            .bytes()
            .take_while(|b| {
                if hex {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
            .count();
        let name = after.get(..len + 1 + usize::from(hex))?;
        (entity(name)?, name.len())
    } else {
        let run = after.bytes().take_while(u8::is_ascii_alphanumeric).count().min(8);
        (2..=run).rev().find_map(|len| {
            let name = after.get(..len)?;
            entity(name)
                .filter(|&c| u32::from(c) <= 0xff && name != "apos")
                .map(|c| (c, len))
        })?
    };
    let next = after.as_bytes().get(used);
    if in_attribute && named && next.is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'=') {
        return None;
    }
    Some((c, used))
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        // 128-159 name C1 controls, which nobody means: browsers read them
        // as windows-1252, where mail written on Windows came from.
        let code = match code {
            0x80..=0x9f => WINDOWS_1252_C1.get(code as usize - 0x80).copied().unwrap_or(code),
            _ => code,
        };
        return char::from_u32(code).filter(|c| !c.is_control() || c.is_whitespace());
    }
    ENTITIES
        .binary_search_by(|(known, _)| known.cmp(&name))
        .ok()
        .and_then(|i| ENTITIES.get(i))
        .map(|&(_, c)| c)
}

/// What windows-1252 has at 0x80-0x9F (HTML's table for numeric
/// references there); the five holes stay C1 controls.
const WINDOWS_1252_C1: [u32; 32] = [
    0x20ac, 0x81, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152,
    0x8d, 0x017d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161,
    0x203a, 0x0153, 0x9d, 0x017e, 0x0178,
];

/// The named character references of HTML 4 (the set mail is written
/// with), `&apos;`, and the upper-case spellings browsers also take
/// (`&AMP;`, `&COPY;`...), sorted by name for a binary search.
const ENTITIES: [(&str, char); 259] = [
    ("AElig", 'Æ'),
    ("AMP", '&'),
    ("Aacute", 'Á'),
    ("Acirc", 'Â'),
    ("Agrave", 'À'),
    ("Alpha", 'Α'),
    ("Aring", 'Å'),
    ("Atilde", 'Ã'),
    ("Auml", 'Ä'),
    ("Beta", 'Β'),
    ("COPY", '©'),
    ("Ccedil", 'Ç'),
    ("Chi", 'Χ'),
    ("Dagger", '\u{2021}'),
    ("Delta", 'Δ'),
    ("ETH", 'Ð'),
    ("Eacute", 'É'),
    ("Ecirc", 'Ê'),
    ("Egrave", 'È'),
    ("Epsilon", 'Ε'),
    ("Eta", 'Η'),
    ("Euml", 'Ë'),
    ("GT", '>'),
    ("Gamma", 'Γ'),
    ("Iacute", 'Í'),
    ("Icirc", 'Î'),
    ("Igrave", 'Ì'),
    ("Iota", 'Ι'),
    ("Iuml", 'Ï'),
    ("Kappa", 'Κ'),
    ("LT", '<'),
    ("Lambda", 'Λ'),
    ("Mu", 'Μ'),
    ("Ntilde", 'Ñ'),
    ("Nu", 'Ν'),
    ("OElig", 'Œ'),
    ("Oacute", 'Ó'),
    ("Ocirc", 'Ô'),
    ("Ograve", 'Ò'),
    ("Omega", 'Ω'),
    ("Omicron", 'Ο'),
    ("Oslash", 'Ø'),
    ("Otilde", 'Õ'),
    ("Ouml", 'Ö'),
    ("Phi", 'Φ'),
    ("Pi", 'Π'),
    ("Prime", '\u{2033}'),
    ("Psi", 'Ψ'),
    ("QUOT", '"'),
    ("REG", '®'),
    ("Rho", 'Ρ'),
    ("Scaron", 'Š'),
    ("Sigma", 'Σ'),
    ("THORN", 'Þ'),
    ("Tau", 'Τ'),
    ("Theta", 'Θ'),
    ("Uacute", 'Ú'),
    ("Ucirc", 'Û'),
    ("Ugrave", 'Ù'),
    ("Upsilon", 'Υ'),
    ("Uuml", 'Ü'),
    ("Xi", 'Ξ'),
    ("Yacute", 'Ý'),
    ("Yuml", 'Ÿ'),
    ("Zeta", 'Ζ'),
    ("aacute", 'á'),
    ("acirc", 'â'),
    ("acute", '´'),
    ("aelig", 'æ'),
    ("agrave", 'à'),
    ("alefsym", 'ℵ'),
    ("alpha", 'α'),
    ("amp", '&'),
    ("and", '∧'),
    ("ang", '∠'),
    ("apos", '\''),
    ("aring", 'å'),
    ("asymp", '≈'),
    ("atilde", 'ã'),
    ("auml", 'ä'),
    ("bdquo", '\u{201e}'),
    ("beta", 'β'),
    ("brvbar", '¦'),
    ("bull", '\u{2022}'),
    ("cap", '∩'),
    ("ccedil", 'ç'),
    ("cedil", '¸'),
    ("cent", '¢'),
    ("chi", 'χ'),
    ("circ", 'ˆ'),
    ("clubs", '♣'),
    ("cong", '≅'),
    ("copy", '©'),
    ("crarr", '↵'),
    ("cup", '∪'),
    ("curren", '¤'),
    ("dArr", '⇓'),
    ("dagger", '\u{2020}'),
    ("darr", '↓'),
    ("deg", '°'),
    ("delta", 'δ'),
    ("diams", '♦'),
    ("divide", '÷'),
    ("eacute", 'é'),
    ("ecirc", 'ê'),
    ("egrave", 'è'),
    ("empty", '∅'),
    ("emsp", '\u{2003}'),
    ("ensp", '\u{2002}'),
    ("epsilon", 'ε'),
    ("equiv", '≡'),
    ("eta", 'η'),
    ("eth", 'ð'),
    ("euml", 'ë'),
    ("euro", '€'),
    ("exist", '∃'),
    ("fnof", 'ƒ'),
    ("forall", '∀'),
    ("frac12", '½'),
    ("frac14", '¼'),
    ("frac34", '¾'),
    ("frasl", '\u{2044}'),
    ("gamma", 'γ'),
    ("ge", '≥'),
    ("gt", '>'),
    ("hArr", '⇔'),
    ("harr", '↔'),
    ("hearts", '♥'),
    ("hellip", '\u{2026}'),
    ("iacute", 'í'),
    ("icirc", 'î'),
    ("iexcl", '¡'),
    ("igrave", 'ì'),
    ("image", 'ℑ'),
    ("infin", '∞'),
    ("int", '∫'),
    ("iota", 'ι'),
    ("iquest", '¿'),
    ("isin", '∈'),
    ("iuml", 'ï'),
    ("kappa", 'κ'),
    ("lArr", '⇐'),
    ("lambda", 'λ'),
    ("lang", '〈'),
    ("laquo", '«'),
    ("larr", '←'),
    ("lceil", '⌈'),
    ("ldquo", '\u{201c}'),
    ("le", '≤'),
    ("lfloor", '⌊'),
    ("lowast", '∗'),
    ("loz", '◊'),
    ("lrm", '\u{200e}'),
    ("lsaquo", '\u{2039}'),
    ("lsquo", '\u{2018}'),
    ("lt", '<'),
    ("macr", '¯'),
    ("mdash", '\u{2014}'),
    ("micro", 'µ'),
    ("middot", '·'),
    ("minus", '−'),
    ("mu", 'μ'),
    ("nabla", '∇'),
    ("nbsp", '\u{a0}'),
    ("ndash", '\u{2013}'),
    ("ne", '≠'),
    ("ni", '∋'),
    ("not", '¬'),
    ("notin", '∉'),
    ("nsub", '⊄'),
    ("ntilde", 'ñ'),
    ("nu", 'ν'),
    ("oacute", 'ó'),
    ("ocirc", 'ô'),
    ("oelig", 'œ'),
    ("ograve", 'ò'),
    ("oline", '\u{203e}'),
    ("omega", 'ω'),
    ("omicron", 'ο'),
    ("oplus", '⊕'),
    ("or", '∨'),
    ("ordf", 'ª'),
    ("ordm", 'º'),
    ("oslash", 'ø'),
    ("otilde", 'õ'),
    ("otimes", '⊗'),
    ("ouml", 'ö'),
    ("para", '¶'),
    ("part", '∂'),
    ("permil", '\u{2030}'),
    ("perp", '⊥'),
    ("phi", 'φ'),
    ("pi", 'π'),
    ("piv", 'ϖ'),
    ("plusmn", '±'),
    ("pound", '£'),
    ("prime", '\u{2032}'),
    ("prod", '∏'),
    ("prop", '∝'),
    ("psi", 'ψ'),
    ("quot", '"'),
    ("rArr", '⇒'),
    ("radic", '√'),
    ("rang", '〉'),
    ("raquo", '»'),
    ("rarr", '→'),
    ("rceil", '⌉'),
    ("rdquo", '\u{201d}'),
    ("real", 'ℜ'),
    ("reg", '®'),
    ("rfloor", '⌋'),
    ("rho", 'ρ'),
    ("rlm", '\u{200f}'),
    ("rsaquo", '\u{203a}'),
    ("rsquo", '\u{2019}'),
    ("sbquo", '\u{201a}'),
    ("scaron", 'š'),
    ("sdot", '⋅'),
    ("sect", '§'),
    ("shy", '\u{ad}'),
    ("sigma", 'σ'),
    ("sigmaf", 'ς'),
    ("sim", '∼'),
    ("spades", '♠'),
    ("sub", '⊂'),
    ("sube", '⊆'),
    ("sum", '∑'),
    ("sup", '⊃'),
    ("sup1", '¹'),
    ("sup2", '²'),
    ("sup3", '³'),
    ("supe", '⊇'),
    ("szlig", 'ß'),
    ("tau", 'τ'),
    ("there4", '∴'),
    ("theta", 'θ'),
    ("thetasym", 'ϑ'),
    ("thinsp", '\u{2009}'),
    ("thorn", 'þ'),
    ("tilde", '˜'),
    ("times", '×'),
    ("trade", '™'),
    ("uArr", '⇑'),
    ("uacute", 'ú'),
    ("uarr", '↑'),
    ("ucirc", 'û'),
    ("ugrave", 'ù'),
    ("uml", '¨'),
    ("upsih", 'ϒ'),
    ("upsilon", 'υ'),
    ("uuml", 'ü'),
    ("weierp", '℘'),
    ("xi", 'ξ'),
    ("yacute", 'ý'),
    ("yen", '¥'),
    ("yuml", 'ÿ'),
    ("zeta", 'ζ'),
    ("zwj", '\u{200d}'),
    ("zwnj", '\u{200c}'),
];

/// The text being built: lines, and whether white space is kept as is.
#[derive(Default)]
struct Text {
    out: String,
    /// Inside `<pre>`: white space is kept.
    pre: usize,
    /// A space is owed before the next word (collapsed white space).
    space: bool,
    /// Inside a link: its address, and where its text starts in `out`.
    link: Option<(String, usize)>,
}

impl Text {
    fn push_text(&mut self, raw: &str) {
        self.push_chars(&decode_entities(raw, false));
    }

    /// Appends text whose references are already decoded.
    fn push_chars(&mut self, text: &str) {
        if self.pre > 0 {
            self.out.push_str(text);
            return;
        }
        for c in text.chars() {
            if c.is_whitespace() && c != '\u{a0}' {
                self.space = true;
            } else {
                if self.space && !self.out.is_empty() && !self.out.ends_with('\n') {
                    self.out.push(' ');
                }
                self.space = false;
                self.out.push(if c == '\u{a0}' { ' ' } else { c });
            }
        }
    }

    /// Ends the line, unless it is ended already; with `blank`, leaves a
    /// blank line after it.
    fn end_line(&mut self, blank: bool) {
        self.space = false;
        while self.out.ends_with(' ') {
            self.out.pop();
        }
        if let Some((_, from)) = &mut self.link {
            *from = (*from).min(self.out.len());
        }
        if self.out.is_empty() {
            return;
        }
        if !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        if blank && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        match (name, tag.closing) {
            ("pre", false) => {
                self.end_line(true);
                self.pre += 1;
            }
            ("pre", true) => {
                self.pre = self.pre.saturating_sub(1);
                self.end_line(true);
            }
            ("br", _) => {
                // An explicit break, even on an empty line; never more than
                // one blank line.
                if !self.out.is_empty() && !self.out.ends_with("\n\n") {
                    self.out.push('\n');
                }
                self.space = false;
            }
            ("li", false) => {
                self.end_line(false);
                self.push_chars("-");
                self.space = true;
            }
            ("td" | "th", _) => self.space = true,
            // An image is its text alternative, marked as one (as text
            // browsers show it); an image without one is left out.
            ("img", _) => {
                if let Some(alt) = tag.alt.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
                    self.push_chars(&format!("[{alt}]"));
                }
            }
            ("a", false) => {
                // A new link closes one still open, as browsers do.
                self.close_link();
                self.link = tag
                    .href
                    .clone()
                    .filter(|h| h.starts_with("http") || h.starts_with("mailto:"))
                    .map(|href| (href, self.out.len()));
            }
            ("a", true) => self.close_link(),
            _ if PARAGRAPHS.contains(&name) => self.end_line(true),
            _ if LINES.contains(&name) => self.end_line(false),
            _ => {}
        }
    }

    /// Ends the open link, if any: its address follows its text, unless
    /// that text is the address already.
    fn close_link(&mut self) {
        if let Some((href, from)) = self.link.take() {
            let text = self.out.get(from..).unwrap_or_default().trim();
            let bare = href.strip_prefix("mailto:").unwrap_or(&href);
            if text != href && text != bare {
                // White space owed after the text is owed after the address.
                let owed = self.space;
                self.push_chars(&format!(" <{href}>"));
                self.space = owed;
            }
        }
    }

    fn finish(mut self) -> String {
        // A link never closed is a link to the end.
        self.close_link();
        let lines: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        let text = lines.join("\n");
        format!("{}\n", text.trim_matches('\n'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_go_blocks_break_and_references_decode() {
        let html = "<html><head><title>T</title><style>p {color: red}</style></head>\
            <body><h1>Gr&uuml;&szlig;e</h1><p>Hello,&nbsp;<b>Bob</b>\n   and   all.</p>\
            <!-- a comment <p>not shown</p> --><p>1 &lt; 2 &amp;&amp; 3 &gt; 2 &#8364; &#x263A; &bogus; AT&T</p>\
            <ul><li>one</li><li>two</li></ul><br>end<script>alert(1)</script></body></html>";
        assert_eq!(
            to_text(html),
            "Grüße\n\nHello, Bob and all.\n\n1 < 2 && 3 > 2 € ☺ &bogus; AT&T\n\n- one\n- two\n\nend\n"
        );
    }

    #[test]
    fn pre_keeps_its_spacing_and_links_keep_their_address() {
        let html =
            "<p>See <a href=\"https://example.org/x?a=1&amp;b=2\">the page</a>.</p><pre>  a\n    b</pre>";
        assert_eq!(
            to_text(html),
            "See the page <https://example.org/x?a=1&b=2>.\n\n  a\n    b\n"
        );
    }

    #[test]
    fn every_html4_name_decodes_and_an_address_is_not_said_twice() {
        assert!(
            ENTITIES.windows(2).all(|w| w[0].0 < w[1].0),
            "the table must stay sorted"
        );
        assert_eq!(
            to_text("Caf&eacute; &hellip; 5&nbsp;&euro; &Omega;&le;&frac12; &apos;q&apos;"),
            "Café … 5 € Ω≤½ 'q'\n"
        );
        assert_eq!(
            to_text(
                "<a href=\"https://x.test/\">https://x.test/</a> <a href=\"mailto:a@x.test\"> a@x.test </a>"
            ),
            "https://x.test/ a@x.test\n"
        );
        assert_eq!(
            to_text("<a href=\"mailto:a@x.test\">write</a>"),
            "write <mailto:a@x.test>\n"
        );
        // A '>' inside a quoted value does not end the tag; unquoted works.
        assert_eq!(
            to_text("<a title=\"a>b\" href=\"http://t.test\">tricky</a> <a href=http://u.test>u</a>"),
            "tricky <http://t.test> u <http://u.test>\n"
        );
        assert_eq!(to_text("<p class='x>y'>text</p>"), "text\n");
        // A link left open, or cut short by the next one, keeps its address.
        assert_eq!(
            to_text("<a href=\"https://e.test/\">Click here"),
            "Click here <https://e.test/>\n"
        );
        assert_eq!(
            to_text("<a href=\"https://e.test/\">Pay <a name=x>now</a>"),
            "Pay <https://e.test/> now\n"
        );
        assert_eq!(
            to_text("<p><a href=\"https://e.test/\">x&nbsp; </p>y</a>"),
            "x\n\ny <https://e.test/>\n"
        );
    }

    #[test]
    fn latin1_names_and_numbers_decode_without_their_semicolon_as_browsers_do() {
        assert_eq!(
            to_text("&copy 2026 Caf&eacute &lt3 &#8364&#x263A x&ampy &notit; AT&T R&D &bogus &hellip"),
            "© 2026 Café <3 €☺ x&y ¬it; AT&T R&D &bogus &hellip\n"
        );
        assert_eq!(to_text("&COPY &AMP; &LT&GT"), "© & <>\n");
        // 128-159 as windows-1252, as browsers read them; holes stay.
        assert_eq!(to_text("&#128; &#x97; &#150 &#129;"), "€ — – &#129;\n");
        // In an attribute, not before a letter, digit or '=': an address
        // keeps its query.
        assert_eq!(
            to_text("<a href=\"https://e.test/?a=1&copy=2&amp;b=3&lt\">x</a>"),
            "x <https://e.test/?a=1&copy=2&b=3<>\n"
        );
        // Numbers decode there even before a letter.
        assert_eq!(
            to_text("<a href=\"https://e.test/?q=&#38b\">y</a>"),
            "y <https://e.test/?q=&b>\n"
        );
    }

    #[test]
    fn an_image_is_its_alt_text() {
        assert_eq!(
            to_text(
                "<p>Logo: <img src=\"l.png\" alt=\"ACME &amp; Co\"> and <img src=x.png> <IMG ALT=' '>end</p>"
            ),
            "Logo: [ACME & Co] and end\n"
        );
    }

    #[test]
    fn many_references_and_hidden_elements_are_read_in_one_pass() {
        // Each `&` and each hidden element once read the whole rest of
        // the text: quadratic, minutes for a hostile megabyte.
        let amps = "&".repeat(300_000);
        assert_eq!(to_text(&amps).len(), 300_001);
        let scripts = "<SCRIPT>x</Script>y".repeat(30_000);
        assert_eq!(to_text(&scripts), format!("{}\n", "y".repeat(30_000)));
    }

    #[test]
    fn broken_markup_is_text_not_a_panic() {
        assert_eq!(to_text("a < b"), "a < b\n");
        assert_eq!(to_text("<p unterminated"), "<p unterminated\n");
        assert_eq!(to_text("<script>never closed"), "\n");
        assert_eq!(to_text("x<!-- never closed"), "x\n");
        assert_eq!(to_text("&#99999999; &#x;"), "&#99999999; &#x;\n");
        assert_eq!(to_text("&#99999999 &#x &# &"), "&#99999999 &#x &# &\n");
        assert_eq!(to_text("<a href=>x</a><a hreflang=en href='/rel'>y</a>"), "xy\n");
        assert_eq!(
            to_text("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"),
            "a b\nc\n"
        );
    }

    proptest::proptest! {
        /// Any text, markup or not, gives text, never a panic.
        #[test]
        fn never_panics(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "<", ">", "</", "<p>", "</p>", "<br/>", "<pre>", "</pre>", "<li>", "<a href=\"http://x\">", "<a href=",
                "<script>", "</script", "<!--", "-->", "&", "&#", "&#x1F600;", "&amp;", ";", "é", "日", " ", "\n", "\u{a0}",
            ]), 0..40),
        ) {
            let html = pieces.concat();
            let text = to_text(&html);
            proptest::prop_assert!(text.ends_with('\n'));
        }
    }
}
