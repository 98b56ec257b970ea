//! The blob contract suite on the local filesystem backend, one temp dir
//! per test.

use insights_stores::blob::LocalBlobStore;
use insights_tests::contract::blob::BlobFixture;

async fn make() -> BlobFixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let store = LocalBlobStore::new(dir.path().join("blobs"));
    // The TempDir lives (and the directory exists) as long as the fixture.
    BlobFixture::with_guard(store, dir)
}

insights_tests::blob_contract_tests!(make);
