//! Range playback against a real local blob store: the bytes served for
//! every kind of range equal the decrypted original (RFC 9110 §14), and
//! a tampered object is never served as media.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use insights_api::playback::{self, SealedObject};
use insights_core::blob::BlobStore;
use insights_core::crypto::DataKey;
use insights_core::crypto::envelope::{self, ExpectedIds, Header};
use insights_core::domain::{KeyId, TenantId};
use insights_stores::blob::local::LocalBlobStore;

const CONTAINER: &str = "t-playback";
const KEY: &str = "recordings/a/media.ogg.env";

struct Fixture {
    _dir: tempfile::TempDir,
    blobs: Arc<dyn BlobStore>,
    plain: Vec<u8>,
    key_bytes: [u8; 32],
    key_id: KeyId,
    expected: ExpectedIds,
}

/// 1.3 MB of non-repeating bytes: many 64 KiB chunks, a short last one.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(dir.path().to_path_buf()));
    let plain: Vec<u8> = (0..1_300_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let key_id = KeyId::new();
    let key = DataKey::generate(key_id);
    let tenant = TenantId::new();
    let object = uuid::Uuid::new_v4();
    let header = Header::new(tenant, object, key_id);
    let sealed = envelope::encrypt_to_vec(&key, &header, &plain).unwrap();
    blobs.ensure_container(CONTAINER).await.unwrap();
    blobs.put(CONTAINER, KEY, &mut &sealed[..]).await.unwrap();
    Fixture {
        _dir: dir,
        blobs,
        plain,
        key_bytes: *key.bytes(),
        key_id,
        expected: ExpectedIds::new(tenant, object, key_id),
    }
}

impl Fixture {
    fn data_key(&self) -> DataKey {
        DataKey::from_bytes(self.key_id, zeroize::Zeroizing::new(self.key_bytes))
    }
}

async fn serve(req: HttpRequest, fx: web::Data<Fixture>) -> HttpResponse {
    let object = match SealedObject::open(
        fx.blobs.clone(),
        CONTAINER,
        KEY,
        fx.data_key(),
        &fx.expected,
    )
    .await
    {
        Ok(o) => o,
        Err(_) => return HttpResponse::NotFound().finish(),
    };
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    playback::respond(object, "audio/ogg", range.as_deref())
}

async fn get(
    fx: web::Data<Fixture>,
    range: Option<&str>,
) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let app = test::init_service(
        App::new()
            .app_data(fx)
            .route("/media", web::get().to(serve)),
    )
    .await;
    let mut req = test::TestRequest::get().uri("/media");
    if let Some(r) = range {
        req = req.insert_header(("range", r));
    }
    let res = test::call_service(&app, req.to_request()).await;
    let status = res.status();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = test::read_body(res).await.to_vec();
    (status, headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[actix_web::test]
async fn full_partial_suffix_and_seeks_return_the_original_bytes() {
    let fx = web::Data::new(fixture().await);
    let len = fx.plain.len();

    let (status, h, body) = get(fx.clone(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "accept-ranges"), Some("bytes"));
    assert_eq!(header(&h, "content-type"), Some("audio/ogg"));
    assert_eq!(header(&h, "content-length"), Some(len.to_string().as_str()));
    assert!(body == fx.plain, "the whole media decrypts to the original");

    // Seeks across chunk and piece boundaries, as a player does.
    for (start, end) in [
        (0, 0),
        (0, 65_535),
        (65_530, 65_545),
        (100_000, 1_200_000),
        (1_048_570, 1_048_580),
        (len - 1, len - 1),
    ] {
        let (status, h, body) = get(fx.clone(), Some(&format!("bytes={start}-{end}"))).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{start}-{end}");
        assert_eq!(
            header(&h, "content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str())
        );
        assert!(body == fx.plain[start..=end], "bytes {start}-{end}");
    }
    // Open-ended and suffix ranges.
    let (status, _, body) = get(fx.clone(), Some("bytes=1299000-")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(body == fx.plain[1_299_000..]);
    let (status, h, body) = get(fx.clone(), Some("bytes=-70000")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&h, "content-range"),
        Some(format!("bytes {}-{}/{len}", len - 70_000, len - 1).as_str())
    );
    assert!(body == fx.plain[len - 70_000..]);
}

#[actix_web::test]
async fn several_ranges_come_as_multipart_byteranges() {
    let fx = web::Data::new(fixture().await);
    let len = fx.plain.len();
    let (status, h, body) = get(fx.clone(), Some("bytes=0-9, 500000-500099, -5")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    let ct = header(&h, "content-type").unwrap().to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart content type");
    assert_eq!(
        header(&h, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let want = [(0usize, 9usize), (500_000, 500_099), (len - 5, len - 1)];
    let mut rest = &body[..];
    for (a, b) in want {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: audio/ogg\r\nContent-Range: bytes {a}-{b}/{len}\r\n\r\n"
        );
        assert!(rest.starts_with(head.as_bytes()), "part header for {a}-{b}");
        rest = &rest[head.len()..];
        assert!(rest[..=b - a] == fx.plain[a..=b], "part {a}-{b}");
        rest = &rest[b - a + 1..];
    }
    assert_eq!(rest, format!("\r\n--{boundary}--\r\n").as_bytes());
}

#[actix_web::test]
async fn unsatisfiable_ranges_get_416_and_bad_headers_the_whole_media() {
    let fx = web::Data::new(fixture().await);
    let len = fx.plain.len();
    for r in ["bytes=1300001-", "bytes=5000000-6000000", "bytes=-0"] {
        let (status, h, body) = get(fx.clone(), Some(r)).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{r}");
        assert_eq!(
            header(&h, "content-range"),
            Some(format!("bytes */{len}").as_str())
        );
        assert!(body.is_empty());
    }
    let (status, _, body) = get(fx.clone(), Some("bytes=9-1")).await;
    assert_eq!(status, StatusCode::OK, "an invalid Range header is ignored");
    assert!(body == fx.plain);
}

#[actix_web::test]
async fn an_object_bound_elsewhere_or_tampered_is_never_served() {
    let fx = fixture().await;
    // Another tenant's expectations: the header check refuses it.
    let other = ExpectedIds::new(TenantId::new(), uuid::Uuid::new_v4(), fx.key_id);
    let err = SealedObject::open(fx.blobs.clone(), CONTAINER, KEY, fx.data_key(), &other)
        .await
        .unwrap_err();
    assert!(matches!(err, playback::PlaybackError::Crypto(_)), "{err}");

    // Flip one ciphertext byte in the third chunk: reads of that chunk
    // fail authentication; other chunks still play.
    let mut sealed = Vec::new();
    {
        use futures::StreamExt;
        let mut s = fx.blobs.get_stream(CONTAINER, KEY).await.unwrap();
        while let Some(c) = s.next().await {
            sealed.extend_from_slice(&c.unwrap());
        }
    }
    let at = Header::LEN + 2 * (64 * 1024 + 16) + 100;
    sealed[at] ^= 0x01;
    fx.blobs
        .put(CONTAINER, KEY, &mut &sealed[..])
        .await
        .unwrap();
    let object = Arc::new(
        SealedObject::open(
            fx.blobs.clone(),
            CONTAINER,
            KEY,
            fx.data_key(),
            &fx.expected,
        )
        .await
        .unwrap(),
    );
    use futures::StreamExt;
    let ok: Vec<_> = object.stream(0..1000).collect().await;
    assert!(ok.iter().all(Result::is_ok));
    let bad: Vec<_> = object.stream(2 * 65_536..2 * 65_536 + 10).collect().await;
    assert!(bad.iter().any(Result::is_err), "tampered chunk is refused");
}
