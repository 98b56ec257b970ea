//! SIP messages: parsed with `ezk-sip-types` (request line, header names
//! in full and compact form, typed Via, CSeq, From/To), framed on TCP by
//! `Content-Length`, answered with responses built here; and the
//! `multipart/mixed` bodies of SIPREC INVITEs.

use bytes::Bytes;
use ezk_sip_types::header::typed::{CSeq, FromTo, Via};
use ezk_sip_types::msg::{MessageLine, PullParser};
use ezk_sip_types::uri::SipUriUserPart;
use ezk_sip_types::{Headers, Method, Name};

/// Largest SIP message accepted (UDP datagram or TCP message).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// A parsed request. The raw header values are kept to build responses;
/// the typed fields are what the recording server needs.
pub struct Request {
    pub method: Method,
    /// The Request-URI's user part (trunk matching).
    pub uri_user: Option<String>,
    pub headers: Headers,
    pub body: Bytes,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: Method,
    /// The top Via's branch (transaction key with the CSeq method).
    pub branch: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
}

/// What became of a message's bytes.
pub enum Parsed {
    Request(Box<Request>),
    /// A response: the recording server sends no requests that need one
    /// (its BYE after an RTP timeout is fire-and-forget).
    Response,
    /// A request that can be answered, but only with 400 `reason`.
    Bad {
        reason: String,
        /// The raw headers a response needs (Via, From, To, Call-ID, CSeq).
        headers: Headers,
    },
    /// Not SIP, or not enough of it to answer.
    Garbage(&'static str),
}

/// Finds the end of the first message in a TCP stream buffer:
/// `Some(Ok(len))` when a whole message is there, `None` when more bytes
/// are needed, `Some(Err)` when the stream cannot be SIP.
pub fn frame(buf: &[u8]) -> Option<Result<usize, &'static str>> {
    let head_end = match find(buf, b"\r\n\r\n") {
        Some(i) => i + 4,
        None => {
            if buf.len() > MAX_MESSAGE {
                return Some(Err("message head too large"));
            }
            return None;
        }
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Some(Err("message head is not UTF-8"));
    };
    let mut len = None;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                match value.trim().parse::<usize>() {
                    Ok(n) => len = Some(n),
                    Err(_) => return Some(Err("bad Content-Length")),
                }
            }
        }
    }
    // RFC 3261 §18.3: on a stream Content-Length is mandatory.
    let Some(len) = len else {
        return Some(Err("no Content-Length on a stream transport"));
    };
    if head_end + len > MAX_MESSAGE {
        return Some(Err("message too large"));
    }
    if buf.len() < head_end + len {
        return None;
    }
    Some(Ok(head_end + len))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one message (a UDP datagram, or a TCP message cut by [`frame`]).
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.len() > MAX_MESSAGE {
        return Parsed::Garbage("message too large");
    }
    let src = Bytes::copy_from_slice(buf);
    let mut lines = PullParser::new(&src, 0);
    let Some(Ok(first)) = lines.next() else {
        return Parsed::Garbage("no request line");
    };
    let Ok(first) = std::str::from_utf8(first) else {
        return Parsed::Garbage("request line is not UTF-8");
    };
    let line: MessageLine = match first.trim_end().parse() {
        Ok(l) => l,
        Err(_) => return Parsed::Garbage("not a SIP request or status line"),
    };
    let request = match line {
        MessageLine::Response(_) => return Parsed::Response,
        MessageLine::Request(r) => r,
    };
    let mut headers = Headers::new();
    let mut problem: Option<String> = None;
    for l in lines.by_ref() {
        let Ok(l) = l else {
            problem.get_or_insert_with(|| "the message head does not end".into());
            break;
        };
        let Ok(l) = std::str::from_utf8(l) else {
            problem.get_or_insert_with(|| "a header is not UTF-8".into());
            continue;
        };
        let Some((name, value)) = l.split_once(':') else {
            problem.get_or_insert_with(|| "a header line without `:`".into());
            continue;
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            problem.get_or_insert_with(|| "a header with an invalid name".into());
            continue;
        }
        // Folded lines (RFC 3261 §7.3.1) become one.
        let value: String = value
            .split(['\r', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        headers.insert(Name::from(name.to_owned()), value);
    }
    let head_end = lines.head_end().min(src.len());
    let mut body = src.slice(head_end..);
    let bad = |reason: String, headers: Headers| Parsed::Bad { reason, headers };
    // The five headers every response copies.
    for (name, label) in [
        (Name::VIA, "Via"),
        (Name::FROM, "From"),
        (Name::TO, "To"),
        (Name::CALL_ID, "Call-ID"),
        (Name::CSEQ, "CSeq"),
    ] {
        if headers.get_raw(&name).next().is_none() {
            return if name == Name::VIA {
                Parsed::Garbage("no Via")
            } else {
                bad(format!("missing {label} header"), headers)
            };
        }
    }
    if let Some(p) = problem {
        return bad(p, headers);
    }
    if let Some(v) = headers.get_raw(&Name::CONTENT_LENGTH).next() {
        match v.trim().parse::<usize>() {
            Ok(n) if n <= body.len() => body = body.slice(..n),
            Ok(_) => return bad("Content-Length exceeds the body".into(), headers),
            Err(_) => return bad("malformed Content-Length".into(), headers),
        }
    }
    let vias = match headers.get::<Vec<Via>>(Name::VIA) {
        Ok(v) if !v.is_empty() => v,
        _ => return bad("malformed Via header".into(), headers),
    };
    let branch = vias[0]
        .params
        .get_val("branch")
        .map(|b| b.as_str().to_owned())
        .unwrap_or_default();
    let cseq = match headers.get_named::<CSeq>() {
        Ok(c) => c,
        Err(_) => return bad("malformed CSeq header".into(), headers),
    };
    let from = match headers.get::<FromTo>(Name::FROM) {
        Ok(f) => f,
        Err(_) => return bad("malformed From header".into(), headers),
    };
    let to = match headers.get::<FromTo>(Name::TO) {
        Ok(t) => t,
        Err(_) => return bad("malformed To header".into(), headers),
    };
    let call_id = headers
        .get_raw(&Name::CALL_ID)
        .next()
        .map(|c| c.trim().to_owned())
        .unwrap_or_default();
    if call_id.is_empty() {
        return bad("empty Call-ID header".into(), headers);
    }
    if cseq.method != request.method && request.method != Method::ACK {
        return bad(
            "CSeq method differs from the request method".into(),
            headers,
        );
    }
    let uri_user = match &request.uri.user_part {
        SipUriUserPart::User(u) => Some(u.as_str().to_owned()),
        SipUriUserPart::UserPw(up) => Some(up.user.as_str().to_owned()),
        SipUriUserPart::Empty => None,
    };
    Parsed::Request(Box::new(Request {
        method: request.method,
        uri_user,
        body,
        call_id,
        cseq: cseq.cseq,
        cseq_method: cseq.method,
        branch,
        from_tag: from.tag.map(|t| t.as_str().to_owned()),
        to_tag: to.tag.map(|t| t.as_str().to_owned()),
        headers,
    }))
}

impl Request {
    /// The first value of a header, trimmed.
    pub fn header(&self, name: &Name) -> Option<&str> {
        self.headers.get_raw(name).next().map(|v| v.trim())
    }

    /// Whether a comma-separated option header (Require, Supported)
    /// lists `tag`.
    pub fn lists(&self, name: &Name, tag: &str) -> bool {
        self.headers
            .get_raw(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(tag))
    }
}

/// A `Session-Expires` value (RFC 4028 §4): the interval in seconds;
/// the error names the problem.
pub fn session_expires(value: &str) -> Result<u64, String> {
    let delta = value.split(';').next().unwrap_or_default().trim();
    delta
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0 && *s < 1 << 32)
        .ok_or_else(|| "malformed Session-Expires header".to_owned())
}

/// Reason phrases of the responses we send.
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The `Allow` of our responses.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE";

/// A response to a request whose raw headers are `headers`: Via, From,
/// To (with `to_tag` added when it has none), Call-ID and CSeq copied,
/// then `extra` headers and the body. A reason phrase may carry the
/// problem (`400 Malformed SDP: …`), never personal data.
pub fn response(
    headers: &Headers,
    code: u16,
    phrase: Option<&str>,
    to_tag: Option<&str>,
    extra: &[(&str, String)],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let phrase = phrase
        .map(|p| p.replace(['\r', '\n'], " "))
        .unwrap_or_else(|| reason(code).to_owned());
    let mut out = format!("SIP/2.0 {code} {phrase}\r\n");
    for v in headers.get_raw(&Name::VIA) {
        out.push_str(&format!("Via: {}\r\n", v.trim()));
    }
    for (name, label) in [(Name::FROM, "From"), (Name::TO, "To")] {
        if let Some(v) = headers.get_raw(&name).next() {
            let v = v.trim();
            let tagged = v
                .split(';')
                .skip(1)
                .any(|p| p.trim().to_ascii_lowercase().starts_with("tag="));
            match (label, to_tag) {
                ("To", Some(tag)) if !tagged => {
                    out.push_str(&format!("To: {v};tag={tag}\r\n"));
                }
                _ => out.push_str(&format!("{label}: {v}\r\n")),
            }
        }
    }
    for (name, label) in [(Name::CALL_ID, "Call-ID"), (Name::CSEQ, "CSeq")] {
        if let Some(v) = headers.get_raw(&name).next() {
            out.push_str(&format!("{label}: {}\r\n", v.trim()));
        }
    }
    out.push_str("Server: Insights SRS\r\n");
    for (name, value) in extra {
        let value = value.replace(['\r', '\n'], " ");
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut bytes = match body {
        Some((ctype, b)) => {
            out.push_str(&format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                b.len()
            ));
            let mut v = out.into_bytes();
            v.extend_from_slice(b);
            v
        }
        None => {
            out.push_str("Content-Length: 0\r\n\r\n");
            out.into_bytes()
        }
    };
    bytes.shrink_to_fit();
    bytes
}

/// One part of a multipart body.
pub struct Part {
    /// Lower-case MIME type without parameters.
    pub content_type: String,
    /// `Content-Disposition` value, lower case, without parameters.
    pub disposition: Option<String>,
    pub body: Vec<u8>,
}

/// The media type of a `Content-Type` value (lower case) and its
/// `boundary` parameter.
pub fn media_type(value: &str) -> (String, Option<String>) {
    let mut it = value.split(';');
    let mt = it.next().unwrap_or_default().trim().to_ascii_lowercase();
    let boundary = it.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    });
    (mt, boundary)
}

/// Splits a `multipart/*` body (RFC 2046 §5.1) into its parts.
pub fn multipart(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err("multipart boundary missing or longer than 70 characters".into());
    }
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    // The first delimiter may start the body or follow a preamble line.
    let mut pos = if body.starts_with(delim) {
        0
    } else {
        match find(body, &[&b"\r\n"[..], delim].concat()) {
            Some(i) => i + 2,
            None => return Err("multipart body without its boundary".into()),
        }
    };
    let mut parts = Vec::new();
    loop {
        let after = pos + delim.len();
        let rest = &body[after.min(body.len())..];
        if rest.starts_with(b"--") {
            break; // close delimiter
        }
        // Transport padding, then CRLF.
        let line_end = match find(rest, b"\r\n") {
            Some(i) => i,
            None => return Err("multipart body ends inside a delimiter".into()),
        };
        if !rest[..line_end].iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err("text after a multipart delimiter".into());
        }
        let start = after + line_end + 2;
        let next = match find(&body[start..], &[&b"\r\n"[..], delim].concat()) {
            Some(i) => start + i,
            None => return Err("multipart body without its closing boundary".into()),
        };
        parts.push(part(&body[start..next])?);
        if parts.len() > 16 {
            return Err("more than 16 body parts".into());
        }
        pos = next + 2;
    }
    if parts.is_empty() {
        return Err("multipart body without parts".into());
    }
    Ok(parts)
}

fn part(raw: &[u8]) -> Result<Part, String> {
    let (head, body) = if raw.starts_with(b"\r\n") {
        (&raw[..0], &raw[2..])
    } else {
        match find(raw, b"\r\n\r\n") {
            Some(i) => (&raw[..i], &raw[i + 4..]),
            None => return Err("a body part without the blank line after its headers".into()),
        }
    };
    let head = std::str::from_utf8(head).map_err(|_| "body part headers are not UTF-8")?;
    // RFC 2046: a part without Content-Type is text/plain.
    let mut content_type = "text/plain".to_owned();
    let mut disposition = None;
    for line in head.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err("a body part header line without `:`".into());
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("c") {
            content_type = media_type(value).0;
        } else if name.eq_ignore_ascii_case("content-disposition") {
            disposition = Some(media_type(value).0);
        }
    }
    Ok(Part {
        content_type,
        disposition,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:srs@198.51.100.9;transport=udp SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n\
f: <sip:src@192.0.2.1>;tag=abc\r\n\
t: <sip:srs@198.51.100.9>\r\n\
i: call-1@192.0.2.1\r\n\
CSeq: 7 INVITE\r\n\
Require: timer, siprec\r\n\
Content-Length: 4\r\n\r\nbodyEXTRA";

    #[test]
    fn requests_parse_with_compact_headers() {
        let Parsed::Request(r) = parse(INVITE.as_bytes()) else {
            panic!("not a request");
        };
        assert_eq!(r.method, Method::INVITE);
        assert_eq!(r.uri_user.as_deref(), Some("srs"));
        assert_eq!(r.call_id, "call-1@192.0.2.1");
        assert_eq!((r.cseq, r.branch.as_str()), (7, "z9hG4bK-1"));
        assert_eq!(r.from_tag.as_deref(), Some("abc"));
        assert!(r.to_tag.is_none());
        assert!(r.lists(&Name::REQUIRE, "siprec"));
        assert_eq!(&r.body[..], b"body");
        let resp = response(&r.headers, 200, None, Some("xyz"), &[], None);
        let text = String::from_utf8(resp).unwrap_or_default();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.contains("To: <sip:srs@198.51.100.9>;tag=xyz\r\n"));
        assert!(text.contains("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"));
    }

    #[test]
    fn broken_requests_are_named() {
        let no_cseq = INVITE.replace("CSeq: 7 INVITE\r\n", "");
        match parse(no_cseq.as_bytes()) {
            Parsed::Bad { reason, .. } => assert_eq!(reason, "missing CSeq header"),
            _ => panic!("accepted"),
        }
        let long = INVITE.replace("Content-Length: 4", "Content-Length: 400");
        assert!(matches!(parse(long.as_bytes()), Parsed::Bad { .. }));
        assert!(matches!(parse(b"hello"), Parsed::Garbage(_)));
        assert!(matches!(
            parse(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Parsed::Response
        ));
    }

    #[test]
    fn session_expires_values() {
        assert_eq!(session_expires("1800;refresher=uac"), Ok(1800));
        assert_eq!(session_expires(" 90 "), Ok(90));
        assert!(session_expires("soon").is_err());
        assert!(session_expires("0").is_err());
    }

    #[test]
    fn tcp_framing_waits_for_the_whole_message() {
        let m = INVITE.as_bytes();
        let whole = m.len() - "EXTRA".len();
        assert_eq!(frame(m), Some(Ok(whole)));
        assert_eq!(frame(&m[..whole - 1]), None);
        assert_eq!(frame(&m[..40]), None);
        assert!(matches!(frame(b"X\r\n\r\n"), Some(Err(_))));
    }

    #[test]
    fn multipart_bodies_split() {
        let body = b"preamble\r\n--XX\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--XX \r\n\
Content-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n<x/>\r\n--XX--\r\n";
        let parts = multipart(body, "XX").unwrap_or_default();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type, "application/sdp");
        assert_eq!(parts[0].body, b"v=0\r\n");
        assert_eq!(parts[1].disposition.as_deref(), Some("recording-session"));
        assert_eq!(parts[1].body, b"<x/>");
        assert!(multipart(b"--XX\r\nContent-Type: a/b\r\n\r\nno end", "XX").is_err());
        assert!(multipart(b"nothing", "XX").is_err());
        let (mt, b) = media_type("multipart/mixed; boundary=\"abc\"");
        assert_eq!(
            (mt.as_str(), b.as_deref()),
            ("multipart/mixed", Some("abc"))
        );
    }
}
