//! The blob contract suite on the Azure backend against Azurite
//! (`INSIGHTS_TEST_AZURITE`, started by `scripts/azurite.sh`). Every case
//! uses its own random containers on the shared emulator.
//!
//! Below the suite: Azure-only tests of the verify-after-upload step,
//! which corrupt the read-back through a fault-injecting HTTP stack.

use async_trait::async_trait;
use bytes::Bytes;
use insights_core::blob::{BlobError, BlobStore};
use insights_stores::blob::{AzureBlobConfig, AzureBlobStore};
use insights_tests::contract::blob::BlobFixture;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
    ReqwestConnector,
};

fn config() -> AzureBlobConfig {
    AzureBlobConfig::emulator(Some(insights_tests::azurite_endpoint()))
}

async fn make() -> BlobFixture {
    let store = AzureBlobStore::new(config())
        .unwrap_or_else(|e| panic!("azure blob store for Azurite: {e:?}"));
    BlobFixture::new(store)
}

insights_tests::blob_contract_tests!(make);

// ------------------------------------------------ verify-after-upload

/// How to damage the verification read (a GET carrying `If-Match`).
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Flip one bit of the body.
    FlipBit,
    /// Drop the body's last byte (headers still give the full size).
    Truncate,
}

#[derive(Debug)]
struct Corrupting {
    inner: HttpClient,
    fault: Fault,
}

#[async_trait]
impl HttpService for Corrupting {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let is_verify_read =
            req.method().as_str() == "GET" && req.headers().contains_key("if-match");
        let response = self.inner.execute(req).await?;
        if !is_verify_read {
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let mut bytes = body.bytes().await?.to_vec();
        match self.fault {
            Fault::FlipBit => {
                let middle = bytes.len() / 2;
                if let Some(b) = bytes.get_mut(middle) {
                    *b ^= 0x01;
                }
            }
            Fault::Truncate => {
                bytes.pop();
            }
        }
        Ok(HttpResponse::from_parts(
            parts,
            HttpResponseBody::from(Bytes::from(bytes)),
        ))
    }
}

#[derive(Debug)]
struct CorruptingConnector(Fault);

impl HttpConnector for CorruptingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Corrupting {
            inner: ReqwestConnector::default().connect(options)?,
            fault: self.0,
        }))
    }
}

/// A put whose read-back differs from what was sent fails with
/// `Integrity` and leaves no object behind.
async fn corrupted_read_back_fails_put(fault: Fault, size: usize) {
    let faulty = AzureBlobStore::with_http_connector(config(), CorruptingConnector(fault))
        .unwrap_or_else(|e| panic!("store: {e:?}"));
    let clean = AzureBlobStore::new(config()).unwrap_or_else(|e| panic!("store: {e:?}"));
    let container = format!("ct-{}", uuid::Uuid::new_v4().simple());
    clean
        .ensure_container(&container)
        .await
        .unwrap_or_else(|e| panic!("ensure: {e:?}"));

    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    match faulty.put(&container, "victim", &mut &data[..]).await {
        Err(BlobError::Integrity(msg)) => eprintln!("{fault:?}: {msg}"),
        other => panic!("{fault:?}: expected Integrity, got {other:?}"),
    }
    match clean.head(&container, "victim").await {
        Err(BlobError::NotFound) => {}
        other => panic!("the unverified object must be deleted, head gave {other:?}"),
    }
}

#[tokio::test]
async fn flipped_bit_in_read_back_fails_small_put() {
    corrupted_read_back_fails_put(Fault::FlipBit, 10_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bit_in_read_back_fails_block_put() {
    corrupted_read_back_fails_put(Fault::FlipBit, 9 * 1024 * 1024).await;
}

#[tokio::test]
async fn truncated_read_back_fails_put() {
    corrupted_read_back_fails_put(Fault::Truncate, 10_000).await;
}
