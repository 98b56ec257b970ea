//! A stand-in HTTP server for the outbound-HTTP tests of every crate: a
//! minimal HTTP/1.1 server on 127.0.0.1:0 that records every request
//! (method, path, query, headers, body) and answers through a closure, one
//! request per connection (`Connection: close`). The closures follow the
//! published request and response shapes of the service they stand in for
//! ([`super::oidc`] and [`super::microsoft`] are built on it).
//!
//! Plain tokio, no HTTP server crate: the test crate serves nothing in
//! production builds (see `scripts/check-boundaries.sh`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A multipart part: (filename, content type, bytes).
pub type Part = (Option<String>, Option<String>, Vec<u8>);

/// One request as the stand-in received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    /// The body (read up to `content-length`).
    pub body: Vec<u8>,
}

impl Recorded {
    /// A header's value (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON: {e}"))
    }

    /// The parts of a `multipart/form-data` body: name → (filename,
    /// content type, bytes).
    pub fn multipart(&self) -> BTreeMap<String, Part> {
        let ct = self.header("content-type").unwrap_or_default();
        let boundary = ct
            .split("boundary=")
            .nth(1)
            .unwrap_or_else(|| panic!("no boundary in {ct}"))
            .trim_matches('"');
        let delim = format!("--{boundary}").into_bytes();
        let mut parts = BTreeMap::new();
        let body = &self.body;
        let mut pos = find(body, &delim, 0).unwrap_or_else(|| panic!("no first boundary"));
        loop {
            pos += delim.len();
            if body[pos..].starts_with(b"--") {
                break;
            }
            pos += 2; // CRLF
            let head_end = find(body, b"\r\n\r\n", pos).unwrap_or_else(|| panic!("part head"));
            let head = String::from_utf8_lossy(&body[pos..head_end]).to_string();
            let data_start = head_end + 4;
            let next = find(body, &delim, data_start).unwrap_or_else(|| panic!("part end"));
            let data = body[data_start..next - 2].to_vec(); // minus CRLF
            let mut name = None;
            let mut filename = None;
            let mut ctype = None;
            for line in head.split("\r\n") {
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("content-disposition:") {
                    for item in line.split(';').map(str::trim) {
                        if let Some(v) = item.strip_prefix("name=") {
                            name = Some(v.trim_matches('"').to_owned());
                        }
                        if let Some(v) = item.strip_prefix("filename=") {
                            filename = Some(v.trim_matches('"').to_owned());
                        }
                    }
                } else if lower.starts_with("content-type:") {
                    ctype = Some(line[13..].trim().to_owned());
                }
            }
            parts.insert(
                name.unwrap_or_else(|| panic!("part without name")),
                (filename, ctype, data),
            );
            pos = next;
        }
        parts
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// What the stand-in answers.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Headers besides `content-length` and `connection`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// `status` with a JSON body.
    pub fn json(status: u16, value: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&value).unwrap_or_default(),
        }
    }

    /// `status` with no body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The reply with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Recorded, &str) -> Reply + Send + Sync;

/// A running stand-in server.
pub struct StandIn {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Starts a server answering with `handler(request, base_url)`.
    pub async fn start(handler: impl Fn(&Recorded, &str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let base = format!("http://{addr}");
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let task = {
            let requests = requests.clone();
            let base = base.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let requests = requests.clone();
                    let handler = handler.clone();
                    let base = base.clone();
                    tokio::spawn(async move {
                        serve(stream, &requests, handler.as_ref(), &base).await;
                    });
                }
            })
        };
        Self {
            base,
            requests,
            task,
        }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    requests: &Mutex<Vec<Recorded>>,
    handler: &Handler,
    base: &str,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n", 0) {
            break p;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut it = request_line.split(' ');
    let method = it.next().unwrap_or_default().to_owned();
    let target = it.next().unwrap_or_default().to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target, None),
    };
    let mut headers = BTreeMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let req = Recorded {
        method,
        path,
        query,
        headers,
        body,
    };
    let reply = handler(&req, base);
    requests.lock().unwrap_or_else(|e| e.into_inner()).push(req);
    let mut out = format!(
        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&reply.body);
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

impl Recorded {
    /// The query string's pairs (empty without a query).
    pub fn query_pairs(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect()
    }

    /// The pairs of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}
