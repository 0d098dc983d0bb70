//! Password hashing with argon2id (OWASP's minimum: 19 MiB, 2 passes, 1 lane), run on blocking
//! threads behind a semaphore so logins can neither stall the async executor nor take every core
//! away from other requests.

use std::sync::Arc;

use anyhow::Context as _;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use tokio::sync::Semaphore;

pub const M_COST_KIB: u32 = 19 * 1024;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the account does not exist so that an
    /// unknown email takes as long to refuse as a wrong password.
    dummy_hash: Arc<str>,
}

pub struct Verified {
    pub ok: bool,
    /// The stored hash used weaker parameters than today's; store a fresh one.
    pub needs_rehash: bool,
}

fn argon2() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let hash = argon2()?
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2 hashing: {e}"))?;
    Ok(hash.to_string())
}

fn verify_blocking(stored: &str, password: &str) -> Verified {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified {
            ok: false,
            needs_rehash: false,
        };
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    let needs_rehash = ok
        && (parsed.algorithm.as_str() != "argon2id"
            || Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() < M_COST_KIB || p.t_cost() < T_COST || p.p_cost() != P_COST
            }));
    Verified { ok, needs_rehash }
}

impl PasswordHasher {
    /// `concurrency` bounds how many hashes run at once (each holds 19 MiB and one core).
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let dummy = super::tokens::new_secret("");
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: hash_blocking(&dummy)?.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .context("hashing task")?
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is no account.
    pub async fn verify(&self, stored: Option<&str>, password: &str) -> anyhow::Result<Verified> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let exists = stored.is_some();
        let stored = stored
            .map(str::to_owned)
            .unwrap_or_else(|| self.dummy_hash.to_string());
        let password = password.to_owned();
        let verified = tokio::task::spawn_blocking(move || verify_blocking(&stored, &password))
            .await
            .context("verification task")?;
        Ok(Verified {
            ok: verified.ok && exists,
            needs_rehash: verified.needs_rehash && exists,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_with_owasp_parameters() {
        let hash = hash_blocking("tangerine-kettle").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let v = verify_blocking(&hash, "tangerine-kettle");
        assert!(v.ok && !v.needs_rehash);
        assert!(!verify_blocking(&hash, "wrong").ok);
    }

    #[test]
    fn weaker_hashes_are_flagged_for_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).expect("params"),
        )
        .hash_password(b"tangerine-kettle")
        .expect("hash")
        .to_string();
        let v = verify_blocking(&weak, "tangerine-kettle");
        assert!(v.ok && v.needs_rehash);
    }
}
