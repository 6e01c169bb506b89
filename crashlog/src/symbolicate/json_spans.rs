//! A JSON reader that keeps byte spans: enough structure to rewrite parts of an `.ips`
//! document while every other byte (spacing, key order, number spelling) stays as written.
//! Values are not decoded here; callers hand the spans to `serde_json`.

/// One JSON value and where it is.
#[derive(Debug)]
pub(crate) enum Node {
    /// `{…}`: members in document order.
    Object {
        start: usize,
        end: usize,
        members: Vec<Member>,
    },
    /// `[…]`.
    Array {
        start: usize,
        end: usize,
        items: Vec<Node>,
    },
    /// A string, number, `true`, `false` or `null`.
    Scalar { start: usize, end: usize },
}

/// One object member.
#[derive(Debug)]
pub(crate) struct Member {
    /// The key, decoded.
    pub(crate) key: String,
    /// Span of the key's quoted text.
    pub(crate) key_start: usize,
    pub(crate) key_end: usize,
    pub(crate) value: Node,
}

impl Node {
    pub(crate) fn start(&self) -> usize {
        match self {
            Node::Object { start, .. } | Node::Array { start, .. } | Node::Scalar { start, .. } => {
                *start
            }
        }
    }

    pub(crate) fn end(&self) -> usize {
        match self {
            Node::Object { end, .. } | Node::Array { end, .. } | Node::Scalar { end, .. } => *end,
        }
    }

    /// The member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object { members, .. } => members.iter().find(|m| m.key == key).map(|m| &m.value),
            _ => None,
        }
    }

    /// The items of an array.
    pub(crate) fn items(&self) -> &[Node] {
        match self {
            Node::Array { items, .. } => items,
            _ => &[],
        }
    }
}

/// Nesting limit (serde_json's own default is 128).
const MAX_DEPTH: usize = 128;

/// Read one value starting at or after `pos` (leading whitespace skipped). Returns the
/// node and the position after it, or a message with the byte offset.
pub(crate) fn parse_at(text: &str, pos: usize) -> Result<(Node, usize), String> {
    let mut p = Parser {
        b: text.as_bytes(),
        text,
        pos,
    };
    p.ws();
    let node = p.value(0)?;
    Ok((node, p.pos))
}

/// Index of the first non-whitespace byte at or after `pos`.
pub(crate) fn skip_ws(text: &str, mut pos: usize) -> usize {
    let b = text.as_bytes();
    while b
        .get(pos)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        pos += 1;
    }
    pos
}

struct Parser<'a> {
    b: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("{what} at byte offset {}", self.pos)
    }

    fn ws(&mut self) {
        self.pos = skip_ws(self.text, self.pos);
    }

    fn value(&mut self, depth: usize) -> Result<Node, String> {
        if depth > MAX_DEPTH {
            return Err(self.err("JSON nested too deeply"));
        }
        match self.b.get(self.pos) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let start = self.pos;
                self.string()?;
                Ok(Node::Scalar {
                    start,
                    end: self.pos,
                })
            }
            Some(_) => {
                let start = self.pos;
                while self
                    .b
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.err("expected a JSON value"));
                }
                Ok(Node::Scalar {
                    start,
                    end: self.pos,
                })
            }
            None => Err(self.err("unexpected end of JSON")),
        }
    }

    fn string(&mut self) -> Result<(), String> {
        self.pos += 1; // opening quote
        loop {
            match self.b.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => self.pos += 2,
                Some(_) => self.pos += 1,
                None => return Err(self.err("unterminated JSON string")),
            }
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", c as char)))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, String> {
        let start = self.pos;
        self.pos += 1;
        let mut members = Vec::new();
        self.ws();
        if self.b.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Node::Object {
                start,
                end: self.pos,
                members,
            });
        }
        loop {
            self.ws();
            if self.b.get(self.pos) != Some(&b'"') {
                return Err(self.err("expected an object key"));
            }
            let key_start = self.pos;
            self.string()?;
            let key_end = self.pos;
            let key: String = serde_json::from_str(self.text.get(key_start..key_end).unwrap_or(""))
                .map_err(|e| self.err(&format!("bad key: {e}")))?;
            self.expect(b':')?;
            self.ws();
            let value = self.value(depth + 1)?;
            members.push(Member {
                key,
                key_start,
                key_end,
                value,
            });
            self.ws();
            match self.b.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Node::Object {
                        start,
                        end: self.pos,
                        members,
                    });
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, String> {
        let start = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.b.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Node::Array {
                start,
                end: self.pos,
                items,
            });
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.b.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Node::Array {
                        start,
                        end: self.pos,
                        items,
                    });
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_written_text() {
        let text = "{\n  \"a\" : [1, {\"b\":\"x\\\"y\"}],\n  \"c\" : true }";
        let (node, end) = parse_at(text, 0).unwrap();
        assert_eq!(end, text.len());
        let a = node.get("a").unwrap();
        let items = a.items();
        assert_eq!(&text[items[0].start()..items[0].end()], "1");
        assert_eq!(
            &text[items[1].start()..items[1].end()],
            "{\"b\":\"x\\\"y\"}"
        );
        let c = node.get("c").unwrap();
        assert_eq!(&text[c.start()..c.end()], "true");
        assert!(parse_at("{\"a\" : [1,", 0).is_err());
        assert!(parse_at(&"[".repeat(500), 0).is_err());
    }
}
