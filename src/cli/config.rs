//! `insights config`: checks the configuration and prints where data
//! lives (never a secret: the database URL shows its scheme only).

use insights_core::config::Settings;

/// Prints the checked settings.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    println!("configuration OK");
    println!("data_dir      {}", settings.data_dir.display());
    println!("listen        {}", settings.listen);
    let db = settings.database_url();
    let scheme = db.expose().split(':').next().unwrap_or_default();
    println!("database      {scheme} (url hidden)");
    println!("blob backend  {:?}", settings.blob.backend);
    println!("key file      {}", settings.key_file().display());
    Ok(())
}
