//! The client-credentials token source against a scripted stand-in token
//! endpoint (raw HTTP/1.1 on a loopback port): the form it posts, caching
//! per tenant, retries honouring `Retry-After`, refusals and deadlines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use insights_http::entra::{ClientCredentials, Failure, GRAPH_SCOPE, TokenError, TokenSource};
use insights_http::{ClientOptions, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use zeroize::Zeroizing;

/// A stand-in answering each request with the next scripted answer (the
/// last one repeats), recording request lines and bodies.
struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

async fn stand_in(answers: Vec<(u16, &'static str, &'static str)>) -> StandIn {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let Ok(read) = sock.read(&mut chunk).await else {
                    break (String::new(), String::new());
                };
                if read == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..read]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_owned(), body.to_owned());
                    }
                }
            };
            let line = head.lines().next().unwrap_or_default().to_owned();
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((line, body));
            let (status, extra, json) = answers[n.min(answers.len() - 1)];
            n += 1;
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{json}",
                json.len()
            );
            let _ = sock.write_all(reply.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    StandIn {
        url: format!("http://127.0.0.1:{port}/{{tenant}}/oauth2/v2.0/token"),
        seen,
    }
}

impl StandIn {
    fn source(&self) -> TokenSource {
        let http = ClientOptions::new(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        TokenSource::new(
            http,
            ClientCredentials {
                endpoint: self.url.clone(),
                client_id: "app-id".into(),
                client_secret: Zeroizing::new("s3cret&=".into()),
                scope: GRAPH_SCOPE.into(),
            },
            Duration::from_secs(2),
        )
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

const TOKEN: &str = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}"#;

#[tokio::test]
async fn cached_tokens_are_fetched_once_per_tenant_with_the_form() {
    let s = stand_in(vec![(200, "", TOKEN)]).await;
    let src = s.source().cached();
    for tenant in ["t1", "t1", "t2"] {
        let t = src
            .token(tenant, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.as_str(), "tok");
    }
    let seen = s.seen();
    assert_eq!(seen.len(), 2, "one fetch per tenant");
    assert_eq!(seen[0].0, "POST /t1/oauth2/v2.0/token HTTP/1.1");
    assert_eq!(seen[1].0, "POST /t2/oauth2/v2.0/token HTTP/1.1");
    assert_eq!(
        seen[0].1,
        "grant_type=client_credentials&client_id=app-id&client_secret=s3cret%26%3D\
         &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
    );
    src.invalidate("t1").await;
    src.token("t1", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.seen().len(), 3, "refetched after invalidate");
}

#[tokio::test]
async fn uncached_sources_fetch_every_time_and_need_no_lifetime() {
    let s = stand_in(vec![(
        200,
        "",
        r#"{"token_type":"Bearer","access_token":"t"}"#,
    )])
    .await;
    let src = s.source();
    for _ in 0..2 {
        src.token("t1", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(s.seen().len(), 2);
    let cached = s.source().cached();
    assert!(matches!(
        cached.token("t1", None).await,
        Err(TokenError::Invalid(_))
    ));
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_and_refusals_are_not() {
    let s = stand_in(vec![(503, "retry-after: 0\r\n", "{}"), (200, "", TOKEN)]).await;
    let src = s.source().retry(RetryPolicy::new(3)).cached();
    let t = src.token("t", None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.as_str(), "tok");
    assert_eq!(s.seen().len(), 2);

    let s = stand_in(vec![(
        401,
        "",
        r#"{"error":"invalid_client","error_description":"AADSTS7000215 for app-id"}"#,
    )])
    .await;
    let src = s.source().retry(RetryPolicy::new(3));
    match src.token("t", None).await {
        Err(TokenError::Rejected { status, code }) => {
            assert_eq!((status, code.as_str()), (401, "invalid_client"));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(s.seen().len(), 1, "a refusal is not retried");

    let s = stand_in(vec![(503, "", r#"{"error":"temporarily_unavailable"}"#)]).await;
    match s.source().token("t", None).await {
        Err(TokenError::Exhausted {
            attempts: 1,
            last: Failure::Status { status: 503, code },
        }) => assert_eq!(code, "temporarily_unavailable"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_ends_the_retries() {
    let s = stand_in(vec![(429, "retry-after: 30\r\n", "{}")]).await;
    let src = s.source().retry(RetryPolicy::new(5));
    let started = Instant::now();
    let r = src
        .token("t", Some(Instant::now() + Duration::from_secs(5)))
        .await;
    assert!(
        matches!(r, Err(TokenError::Exhausted { attempts: 1, .. })),
        "{:?}",
        r.map(|_| ())
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = src.token("t", Some(Instant::now())).await;
    assert!(matches!(
        r,
        Err(TokenError::Exhausted {
            attempts: 0,
            last: Failure::Deadline
        })
    ));
}
