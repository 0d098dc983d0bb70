//! `seed --demo` / `serve --demo`: a demo organization with people in every role, so the product
//! can be explored at once. Re-running resets the demo people's passwords and prints them again.

use meridian_core::Role;
use meridian_db::{Db, Tenant};

use crate::auth::password::PasswordHasher;
use crate::auth::store as auth_store;
use crate::auth::tokens::new_secret;
use crate::orgs::service::{NewOrganization, create_organization};
use crate::orgs::store as org_store;

pub const DEMO_ORG: &str = "Northwind Growth Partners";

const PEOPLE: &[(&str, &str, Role)] = &[
    ("Alex Morgan", "alex.morgan@northwind.example", Role::Owner),
    ("Priya Shah", "priya.shah@northwind.example", Role::Admin),
    (
        "Diego Alvarez",
        "diego.alvarez@northwind.example",
        Role::Manager,
    ),
    (
        "Maya Chen",
        "maya.chen@northwind.example",
        Role::CaseManager,
    ),
    ("Tom Becker", "tom.becker@northwind.example", Role::Intake),
    ("Hannah Lee", "hannah.lee@northwind.example", Role::Member),
    ("Sam Okafor", "sam.okafor@northwind.example", Role::Viewer),
];

pub struct DemoCredential {
    pub name: &'static str,
    pub email: &'static str,
    pub role: Role,
    pub password: String,
}

fn demo_password() -> String {
    // Readable but random: "demo-" and 16 url-safe characters.
    let secret = new_secret("");
    format!("demo-{}", &secret[..16])
}

pub async fn seed_demo(db: &Db, hasher: &PasswordHasher) -> anyhow::Result<Vec<DemoCredential>> {
    let mut credentials = Vec::new();
    let (owner_name, owner_email, _) = PEOPLE[0];
    let mut tx = db.global_read().await?;
    let owner = auth_store::find_user_by_email(&mut tx, owner_email).await?;
    tx.commit().await?;
    let org_id = match owner {
        Some(owner) => {
            let mut tx = db.user_scope(&owner.id).await?;
            let memberships = auth_store::user_memberships(&mut tx, &owner.id).await?;
            tx.commit().await?;
            memberships
                .into_iter()
                .find(|m| m.org_name == DEMO_ORG)
                .map(|m| m.org_id)
                .ok_or_else(|| {
                    anyhow::anyhow!("{owner_email} exists but is not in the demo organization")
                })?
        }
        None => {
            let password = demo_password();
            let who = create_organization(
                db,
                hasher,
                NewOrganization {
                    org_name: DEMO_ORG.to_owned(),
                    name: owner_name.to_owned(),
                    email: owner_email.to_owned(),
                    password,
                    template: "surrogacy".to_owned(),
                },
                None,
                &Default::default(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("creating the demo organization: {}", e.detail()))?;
            who.org.id
        }
    };
    for &(name, email, role) in PEOPLE {
        let password = demo_password();
        let hash = hasher.hash(&password).await?;
        let mut tx = db.global().await?;
        let user = match auth_store::find_user_by_email(&mut tx, email).await? {
            Some(user) => {
                auth_store::set_password_hash(&mut tx, &user.id, &hash).await?;
                user
            }
            None => auth_store::insert_user(&mut tx, email, name, &hash).await?,
        };
        let tenant = Tenant::for_verified_credentials(&org_id, Some(user.id.clone()));
        let mut tx = tx.into_tenant(&tenant).await?;
        if org_store::find_member(&mut tx, &user.id).await?.is_none() {
            org_store::insert_membership(&mut tx, &user.id, role.as_str()).await?;
        }
        tx.commit().await?;
        credentials.push(DemoCredential {
            name,
            email,
            role,
            password,
        });
    }
    Ok(credentials)
}
