//! `meridian secrets rotate`: moves every secret at rest (SMTP passwords, webhook signing secrets)
//! to a new key.
//!
//! - With the key file (the default): a new key is written to `secret.key`, the old one kept in
//!   `secret.key.previous` until every secret is re-sealed, then removed.
//! - With `MERIDIAN_SECRET_KEY`: the operator sets the new key there and the old one in
//!   `MERIDIAN_SECRET_KEY_PREVIOUS` (on every node), runs this command, then removes the previous
//!   key.
//!
//! An interrupted run is safe to repeat: the ring still opens what was not re-sealed yet.

use anyhow::Context;
use clap::Subcommand;
use meridian_app::secrets::{self, KeySource, keys};

use crate::commands::open_for_cli;

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Re-seal every stored secret under a new key (see the README's "Secrets at rest").
    Rotate,
}

pub async fn secrets(config: Option<&str>, command: SecretsCommand) -> anyhow::Result<()> {
    let SecretsCommand::Rotate = command;
    let (mut settings, db) = open_for_cli(config).await?;
    let source = settings.load_secrets()?;
    let result = async {
        let ring = match &source {
            KeySource::Environment => {
                if settings.app.secrets.previous().is_empty() {
                    println!(
                        "MERIDIAN_SECRET_KEY is set and MERIDIAN_SECRET_KEY_PREVIOUS is empty: \
                         re-sealing under the current key only. To rotate, put the new key in \
                         MERIDIAN_SECRET_KEY and the old one in MERIDIAN_SECRET_KEY_PREVIOUS."
                    );
                }
                settings.app.secrets.clone()
            }
            KeySource::File(_) | KeySource::Generated(_) => {
                keys::rotate_key_file(&settings.data_dir).context("writing the new key file")?
            }
        };
        let done = secrets::reseal_all(&db, &ring).await?;
        println!(
            "Re-sealed {} secret(s) under key {}; {} were already under it.",
            done.resealed,
            ring.current().id(),
            done.current
        );
        match source {
            KeySource::Environment => println!(
                "Every secret is under the new key: remove MERIDIAN_SECRET_KEY_PREVIOUS from every node."
            ),
            KeySource::File(_) | KeySource::Generated(_) => {
                keys::forget_previous_key_file(&settings.data_dir)?;
                println!(
                    "The new key is in {}. Restart running servers and workers so they load it.",
                    settings.data_dir.join("secret.key").display()
                );
            }
        }
        anyhow::Ok(())
    }
    .await;
    db.close().await;
    result
}
