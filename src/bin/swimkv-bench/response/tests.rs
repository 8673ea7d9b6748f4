//! Tests of the response parser: every framing, responses split across reads at every
//! byte, keep-alive rules, interim responses and malformed input.

use super::{parse_response, ResponseMeta};

/// Parses a response fed in pieces of `step` bytes, as successive reads would.
fn parse_in_steps(full: &[u8], step: usize) -> (ResponseMeta, Vec<u8>) {
    let mut body = Vec::new();
    let mut end = 0;
    loop {
        end = (end + step).min(full.len());
        let parsed = parse_response(&full[..end], false, &mut body).expect("valid response");
        if let Some(meta) = parsed {
            return (meta, body);
        }
        assert!(end < full.len(), "complete response not recognised");
    }
}

/// Parses a response that must be valid and complete in `raw`.
fn parse_complete(raw: &[u8], eof: bool, body: &mut Vec<u8>) -> ResponseMeta {
    parse_response(raw, eof, body)
        .expect("valid")
        .expect("complete")
}

#[test]
fn parses_content_length_response() {
    let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello";
    let mut body = Vec::new();
    let meta = parse_complete(raw, false, &mut body);
    assert_eq!(meta.status, 200);
    assert!(meta.keep_alive);
    assert_eq!(meta.consumed, raw.len());
    assert_eq!(body, b"hello");
}

#[test]
fn content_length_split_across_reads_at_every_byte() {
    let raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n\r\n{\"e\":\"no\"}!";
    for step in 1..raw.len() {
        let (meta, body) = parse_in_steps(raw, step);
        assert_eq!(meta.status, 503);
        assert_eq!(meta.consumed, raw.len());
        assert_eq!(body, b"{\"e\":\"no\"}!");
    }
}

#[test]
fn parses_chunked_response_split_across_reads() {
    let raw: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
    for step in 1..raw.len() {
        let (meta, body) = parse_in_steps(raw, step);
        assert_eq!(meta.status, 200);
        assert!(meta.keep_alive);
        assert_eq!(meta.consumed, raw.len());
        assert_eq!(body, b"hello, world");
    }
}

#[test]
fn chunked_wins_over_content_length_and_leaves_next_response() {
    let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\ntransfer-encoding: Chunked\r\n\r\n\
        3\r\nabc\r\n0\r\n\r\n"
        .to_vec();
    let first = raw.len();
    raw.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    let mut body = Vec::new();
    let meta = parse_complete(&raw, false, &mut body);
    assert_eq!(meta.consumed, first);
    assert_eq!(body, b"abc");
    let next = parse_complete(&raw[first..], false, &mut body);
    assert_eq!(next.status, 404);
    assert!(body.is_empty());
}

#[test]
fn connection_close_and_http10_disable_keep_alive() {
    let mut body = Vec::new();
    let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let meta = parse_complete(close, false, &mut body);
    assert!(!meta.keep_alive);
    let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    let meta = parse_complete(old, false, &mut body);
    assert!(!meta.keep_alive);
    let old_ka = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
    let meta = parse_complete(old_ka, false, &mut body);
    assert!(meta.keep_alive);
}

#[test]
fn body_until_close_completes_only_at_eof() {
    let raw = b"HTTP/1.1 200 OK\r\n\r\nsome bytes";
    let mut body = Vec::new();
    assert_eq!(parse_response(raw, false, &mut body), Ok(None));
    let meta = parse_complete(raw, true, &mut body);
    assert!(!meta.keep_alive);
    assert_eq!(body, b"some bytes");
}

#[test]
fn skips_interim_responses_and_ignores_body_of_204() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n";
    let mut body = Vec::new();
    let meta = parse_complete(raw, false, &mut body);
    assert_eq!(meta.status, 204);
    assert_eq!(meta.consumed, raw.len());
}

#[test]
fn rejects_malformed_responses_clearly() {
    let mut body = Vec::new();
    let cases: [&[u8]; 5] = [
        b"HTTX/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    for raw in cases {
        assert!(
            parse_response(raw, false, &mut body).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let err = parse_response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        false,
        &mut body,
    )
    .expect_err("gzip is unsupported");
    assert!(err.0.contains("transfer-encoding"), "{err}");
}

#[test]
fn incomplete_chunked_response_is_not_complete_at_eof() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
    let mut body = Vec::new();
    assert_eq!(parse_response(raw, true, &mut body), Ok(None));
    assert!(body.is_empty());
}
