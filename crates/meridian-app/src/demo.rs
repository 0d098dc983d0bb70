//! `seed --demo` / `serve --demo`: a demo organization with people in every role, so the product
//! can be explored at once. Re-running resets the demo people's passwords and prints them again.

use meridian_core::Role;
use meridian_db::Tenant;
use serde_json::json;

use crate::auth::store as auth_store;
use crate::auth::tokens::new_secret;
use crate::http::ctx::{Ctx, OrgRef};
use crate::http::error::AppError;
use crate::leads::input::LeadInput;
use crate::leads::query::{Archived, ListQuery};
use crate::leads::store as lead_store;
use crate::orgs::service::{NewOrganization, create_organization};
use crate::orgs::store as org_store;
use crate::pipelines::store as pipeline_store;
use crate::state::AppState;
use crate::tasks::service::TaskInput;
use crate::{leads, notes, tasks};

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

pub async fn seed_demo(state: &AppState) -> anyhow::Result<Vec<DemoCredential>> {
    let (db, hasher) = (&state.db, &state.hasher);
    let mut credentials = Vec::new();
    let mut people: Vec<(Role, String)> = Vec::new();
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
        people.push((role, user.id.clone()));
        credentials.push(DemoCredential {
            name,
            email,
            role,
            password,
        });
    }
    seed_records(state, &org_id, &people).await?;
    Ok(credentials)
}

const FIRST_NAMES: &[&str] = &[
    "Maria",
    "Jessica",
    "Ashley",
    "Brittany",
    "Amanda",
    "Samantha",
    "Sarah",
    "Stephanie",
    "Jennifer",
    "Elizabeth",
    "Lauren",
    "Megan",
    "Emily",
    "Nicole",
    "Kayla",
    "Amber",
    "Rachel",
    "Courtney",
    "Danielle",
    "Heather",
    "Melissa",
    "Rebecca",
    "Michelle",
    "Tiffany",
    "Chelsea",
    "Christina",
    "Kimberly",
    "Alyssa",
    "Erica",
    "Vanessa",
    "Sofia",
    "Gabriela",
    "Aaliyah",
    "Destiny",
    "Jasmine",
    "Brianna",
];
const LAST_NAMES: &[&str] = &[
    "Garcia",
    "Johnson",
    "Williams",
    "Brown",
    "Martinez",
    "Davis",
    "Rodriguez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
];
const STATES: &[&str] = &[
    "CA", "TX", "FL", "AZ", "NV", "OR", "WA", "CO", "IL", "GA", "NC", "OH",
];
const CASE_STAGES: &[&str] = &[
    "new",
    "new",
    "new",
    "new",
    "new",
    "contacted",
    "contacted",
    "contacted",
    "contacted",
    "qualified",
    "qualified",
    "qualified",
    "applied",
    "applied",
    "under_review",
    "under_review",
    "approved",
    "approved",
    "pending_handoff",
    "pending_handoff",
    "pending_handoff",
    "pending_match",
    "pending_match",
    "matched",
    "matched",
    "in_journey",
    "delivered",
    "disqualified",
    "disqualified",
    "lost",
    "new",
    "contacted",
    "qualified",
    "applied",
    "new",
    "contacted",
];
const SOURCES: &[&str] = &[
    "meta", "meta", "meta", "google", "web_form", "referral", "manual",
];
const PARENT_COUPLES: &[(&str, &str, &str)] = &[
    ("Daniel", "Cohen", "Michael Cohen"),
    ("Laura", "Bianchi", "Marco Bianchi"),
    ("Wei", "Zhang", "Li Na Zhang"),
    ("Olivia", "Bennett", "James Bennett"),
    ("Hiroshi", "Tanaka", "Yuki Tanaka"),
    ("Claire", "Dubois", "Antoine Dubois"),
    ("Priya", "Raman", "Arjun Raman"),
    ("Sean", "O'Connor", "Patrick O'Connor"),
    ("Emma", "Schmidt", "Lena Schmidt"),
    ("Carlos", "Mendes", "Rafael Mendes"),
];
const PARENT_STAGES: &[&str] = &[
    "new",
    "contacted",
    "contacted",
    "in_review",
    "qualified",
    "qualified",
    "matched",
    "new",
    "on_hold",
    "declined",
];

/// Demo cases, intended parents, notes and tasks, created once through the same services the
/// API uses (so they carry activity like real records).
async fn seed_records(
    state: &AppState,
    org_id: &str,
    people: &[(Role, String)],
) -> anyhow::Result<()> {
    let ctx = Ctx::operator(
        OrgRef {
            id: org_id.to_owned(),
            name: DEMO_ORG.to_owned(),
        },
        "Demo data",
    );
    let described = |e: AppError| anyhow::anyhow!("seeding demo records: {}", e.detail());
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let existing = lead_store::count(
        &mut tx,
        &ListQuery {
            archived: Archived::All,
            ..ListQuery::default()
        },
    )
    .await?;
    let pipelines = pipeline_store::list(&mut tx).await?;
    tx.commit().await?;
    if existing > 0 {
        return Ok(());
    }
    let person = |role: Role| {
        people
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, id)| id.clone())
    };
    let (intake, case_manager, member) = (
        person(Role::Intake),
        person(Role::CaseManager),
        person(Role::Member),
    );
    let find = |name: &str| {
        pipelines
            .iter()
            .find(|p| p.spec.name == name)
            .map(|p| p.id.clone())
    };
    let (Some(cases), Some(parents)) = (find("Cases"), find("Intended Parents")) else {
        return Ok(());
    };
    for (i, stage) in CASE_STAGES.iter().enumerate() {
        let first = FIRST_NAMES[i % FIRST_NAMES.len()];
        let last = LAST_NAMES[(i * 7) % LAST_NAMES.len()];
        let assignee = match *stage {
            "pending_handoff" => None,
            "pending_match" | "matched" | "in_journey" | "delivered" => case_manager.clone(),
            _ if i % 3 == 0 => None,
            _ => intake.clone(),
        };
        let input: LeadInput = serde_json::from_value(json!({
            "pipeline_id": cases,
            "stage": stage,
            "first_name": first,
            "last_name": last,
            "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), i),
            "phone": format!("+1602555{:04}", 1000 + i),
            "state": STATES[i % STATES.len()],
            "country": "US",
            "date_of_birth": format!("{}-{:02}-{:02}", 1988 + i % 10, 1 + i % 12, 1 + (i * 3) % 28),
            "source": SOURCES[i % SOURCES.len()],
            "utm_campaign": if SOURCES[i % SOURCES.len()] == "meta" { Some("spring-surrogates") } else { None },
            "assigned_to": assignee,
            "is_priority": i % 9 == 4,
            "tags": if i % 4 == 0 { vec!["spanish-speaking"] } else { Vec::new() },
            "custom_fields": {
                "height_in": 60 + (i % 12), "weight_lb": 120 + (i * 3) % 60,
                "has_given_birth": i % 5 != 0, "prior_surrogacy": i % 6 == 0,
                "insurance": (["Private", "Medicaid", "None"][i % 3]),
            },
        }))?;
        let lead = leads::service::create(state, &ctx, input)
            .await
            .map_err(described)?;
        if i % 4 == 1 {
            notes::service::add(
                state,
                &ctx,
                &lead.row.id,
                "<p>Spoke on the phone. Has two children of her own and a <strong>supportive partner</strong>; prefers evening calls.</p>",
            )
            .await
            .map_err(described)?;
        }
        if i % 3 == 1 {
            let due = time::OffsetDateTime::now_utc() + time::Duration::hours(i as i64 * 9 - 60);
            tasks::service::create(
                state,
                &ctx,
                Some(&lead.row.id),
                TaskInput {
                    title: Some(format!("Follow up with {first}")),
                    task_type: Some(if i % 2 == 0 { "call" } else { "email" }.to_owned()),
                    due_at: Some(Some(due)),
                    assignee_id: Some(intake.clone().or_else(|| member.clone())),
                    ..TaskInput::default()
                },
            )
            .await
            .map_err(described)?;
        }
    }
    for (i, ((first, last, partner), stage)) in PARENT_COUPLES.iter().zip(PARENT_STAGES).enumerate()
    {
        let input: LeadInput = serde_json::from_value(json!({
            "pipeline_id": parents,
            "stage": stage,
            "first_name": first,
            "last_name": last,
            "email": format!("{}.{}@example.net", first.to_lowercase(), last.to_lowercase().replace('\'', "")),
            "phone": format!("+1310555{:04}", 2000 + i),
            "source": (["referral", "web_form", "google"][i % 3]),
            "assigned_to": member,
            "custom_fields": {"partner_name": partner, "budget": 120_000 + i * 15_000,
                              "embryos": (["Not started", "In progress", "Ready"][i % 3])},
        }))?;
        leads::service::create(state, &ctx, input)
            .await
            .map_err(described)?;
    }
    Ok(())
}
