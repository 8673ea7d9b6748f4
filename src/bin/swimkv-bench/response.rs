//! Incremental HTTP/1.1 response parser for the bench's client: status line, headers,
//! `Content-Length`, `Transfer-Encoding: chunked` (with extensions and trailers) and
//! bodies delimited by connection close; `1xx` interim responses are skipped.
//!
//! [`parse_response`] is pure and restartable: it looks at the bytes received so far and
//! either returns `Ok(None)` (need more; call again with a longer buffer), a complete
//! response with the number of bytes it occupied, or a [`ProtocolError`]. Invariants:
//! bytes after `consumed` (a pipelined next response) are never touched; the head is
//! limited to `MAX_HEAD` and the decoded body to `MAX_BODY` bytes; `keep_alive` is never
//! true for a close-delimited body; `204`, `304` and `1xx` responses have no body
//! whatever their headers say; chunked framing wins over `Content-Length`.

use std::fmt;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 256 << 20;

/// Framing of one complete response found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponseMeta {
    /// HTTP status code (after any skipped `1xx` interim responses).
    pub(crate) status: u16,
    /// Whether the connection may carry another request afterwards.
    pub(crate) keep_alive: bool,
    /// Bytes of the buffer occupied by this response (interim responses included).
    pub(crate) consumed: usize,
}

/// A malformed or unsupported response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError(pub(crate) String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shorthand for a protocol error result.
fn proto<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// Strips one trailing `\r`.
fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Index of the next `\n` at or after `from`.
fn find_lf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i)
}

/// Length of the response head (status line + headers + blank line), if complete.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    while let Some(lf) = find_lf(buf, line_start) {
        if line_start != 0 && trim_cr(&buf[line_start..lf]).is_empty() {
            return Some(lf + 1);
        }
        line_start = lf + 1;
    }
    None
}

/// How a response body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Parsed response head.
struct Head {
    status: u16,
    keep_alive: bool,
    framing: Framing,
}

/// Parses a complete head (`head` ends with the blank line).
fn parse_head(head: &[u8]) -> Result<Head, ProtocolError> {
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let status_line = lines.next().unwrap_or_default();
    let Some(rest) = status_line.strip_prefix(b"HTTP/1.") else {
        return proto(format!(
            "bad status line {:?}",
            String::from_utf8_lossy(status_line)
        ));
    };
    let http10 = match rest.first() {
        Some(b'0') => true,
        Some(b'1') => false,
        _ => return proto("unsupported HTTP version"),
    };
    let status = match (rest.get(1), rest.get(2..5)) {
        (Some(b' '), Some(code)) if code.iter().all(u8::is_ascii_digit) => code
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0')),
        _ => {
            return proto(format!(
                "bad status line {:?}",
                String::from_utf8_lossy(status_line)
            ))
        }
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive_token = false;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return proto(format!(
                "bad header line {:?}",
                String::from_utf8_lossy(line)
            ));
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| {
                    ProtocolError(format!(
                        "bad content-length {:?}",
                        String::from_utf8_lossy(value)
                    ))
                })?;
            if content_length.is_some_and(|old| old != parsed) {
                return proto("conflicting content-length headers");
            }
            content_length = Some(parsed);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let codings: Vec<&[u8]> = value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|c| !c.is_empty())
                .collect();
            match codings.split_last() {
                Some((last, before)) if last.eq_ignore_ascii_case(b"chunked") => {
                    if let Some(other) = before.first() {
                        return proto(format!(
                            "unsupported transfer-encoding {:?}",
                            String::from_utf8_lossy(other)
                        ));
                    }
                    chunked = true;
                }
                Some(_) => {
                    return proto(format!(
                        "unsupported transfer-encoding {:?}",
                        String::from_utf8_lossy(value)
                    ))
                }
                None => {}
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = content_length {
        if n > MAX_BODY {
            return proto(format!("body of {n} bytes exceeds {MAX_BODY}"));
        }
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let keep_alive = !close && (!http10 || keep_alive_token);
    Ok(Head {
        status,
        keep_alive: keep_alive && !matches!(framing, Framing::UntilClose),
        framing,
    })
}

/// Decodes a chunked body starting at `pos`; returns the end offset when complete.
fn decode_chunked(
    buf: &[u8],
    mut pos: usize,
    body: &mut Vec<u8>,
) -> Result<Option<usize>, ProtocolError> {
    loop {
        let Some(lf) = find_lf(buf, pos) else {
            if buf.len() - pos > 1024 {
                return proto("chunk size line too long");
            }
            return Ok(None);
        };
        let line = trim_cr(&buf[pos..lf]);
        let size_text = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| {
                ProtocolError(format!(
                    "bad chunk size {:?}",
                    String::from_utf8_lossy(line)
                ))
            })?;
        pos = lf + 1;
        if size == 0 {
            // Optional trailer fields, then the final blank line.
            loop {
                let Some(lf) = find_lf(buf, pos) else {
                    return Ok(None);
                };
                let empty = trim_cr(&buf[pos..lf]).is_empty();
                pos = lf + 1;
                if empty {
                    return Ok(Some(pos));
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY {
            return proto(format!("chunked body exceeds {MAX_BODY} bytes"));
        }
        let data_end = pos + size;
        let Some(data) = buf.get(pos..data_end) else {
            return Ok(None);
        };
        body.extend_from_slice(data);
        pos = data_end;
        match buf.get(pos..) {
            Some([b'\r', b'\n', ..]) => pos += 2,
            Some([b'\n', ..]) => pos += 1,
            Some([] | [b'\r']) | None => return Ok(None),
            Some(_) => return proto("missing CRLF after chunk data"),
        }
    }
}

/// Parses one response from the start of `buf`. `Ok(None)` means more bytes are needed;
/// `eof` says the peer closed, which completes a body delimited by connection close.
/// On success `body` holds the decoded body (it is cleared first).
pub(crate) fn parse_response(
    buf: &[u8],
    eof: bool,
    body: &mut Vec<u8>,
) -> Result<Option<ResponseMeta>, ProtocolError> {
    body.clear();
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        let Some(head_len) = find_head_end(rest) else {
            if rest.len() > MAX_HEAD {
                return proto(format!("response head exceeds {MAX_HEAD} bytes"));
            }
            return Ok(None);
        };
        let head = parse_head(&rest[..head_len])?;
        let body_start = start + head_len;
        if (100..200).contains(&head.status) {
            if head.status == 101 {
                return proto("unexpected 101 Switching Protocols");
            }
            start = body_start; // interim response: skip it, the real one follows
            continue;
        }
        let end = match head.framing {
            Framing::Length(n) => {
                let Some(data) = buf.get(body_start..body_start + n) else {
                    return Ok(None);
                };
                body.extend_from_slice(data);
                body_start + n
            }
            Framing::Chunked => match decode_chunked(buf, body_start, body)? {
                Some(end) => end,
                None => {
                    body.clear();
                    return Ok(None);
                }
            },
            Framing::UntilClose => {
                if !eof {
                    return Ok(None);
                }
                if buf.len() - body_start > MAX_BODY {
                    return proto(format!("body exceeds {MAX_BODY} bytes"));
                }
                body.extend_from_slice(&buf[body_start..]);
                buf.len()
            }
        };
        return Ok(Some(ResponseMeta {
            status: head.status,
            keep_alive: head.keep_alive,
            consumed: end,
        }));
    }
}

// The parser tests are longer than the parser; they live in `response/tests.rs`.
#[cfg(test)]
mod tests;
