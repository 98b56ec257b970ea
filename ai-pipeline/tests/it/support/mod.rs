//! Local stand-in servers for the provider tests: a minimal HTTP/1.1
//! server on 127.0.0.1:0 that records every request (method, path, query,
//! headers, body) and answers through a closure, one request per
//! connection (`Connection: close`). The closures follow the providers'
//! published request and response shapes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ai_pipeline::providers::{CallContext, CallRecords, Http, RetryPolicy};
use async_trait::async_trait;
use insights_core::domain::{ProviderCall, RecordingId, TenantId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A multipart part: (filename, content type, bytes).
pub type Part = (Option<String>, Option<String>, Vec<u8>);

/// One request as the stand-in received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

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
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&value).unwrap_or_default(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

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

/// Processing records kept in memory.
#[derive(Default)]
pub struct MemoryRecords(pub Mutex<Vec<ProviderCall>>);

#[async_trait]
impl CallRecords for MemoryRecords {
    async fn record(&self, call: ProviderCall) -> Result<(), String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(call);
        Ok(())
    }
}

impl MemoryRecords {
    pub fn all(&self) -> Vec<ProviderCall> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A job context recording into memory.
pub fn context() -> (CallContext, Arc<MemoryRecords>) {
    let records = Arc::new(MemoryRecords::default());
    let ctx = CallContext {
        tenant: TenantId::new(),
        recording: Some(RecordingId::new()),
        records: records.clone(),
    };
    (ctx, records)
}

/// An HTTP client with short backoffs: 3 attempts, 20 ms doubling, waits
/// of up to 2 s (so a `Retry-After: 1` is honoured).
pub fn http() -> Arc<Http> {
    Arc::new(
        Http::new(RetryPolicy {
            timeout: std::time::Duration::from_secs(10),
            max_attempts: 3,
            backoff_initial: std::time::Duration::from_millis(20),
            backoff_max: std::time::Duration::from_secs(2),
        })
        .unwrap_or_else(|e| panic!("http client: {e}")),
    )
}
