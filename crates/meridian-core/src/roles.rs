//! Built-in roles and what each may do, in one table. Every authorization decision goes through
//! [`Role::allows`]; handlers never compare role names themselves.
//!
//! Roles are ordered by `rank` for the "may grant / may manage" rules (nobody hands out or touches
//! a role above their own). Specialist roles added later (intake, case_manager) and custom roles
//! join by adding rows to [`ROLE_TABLE`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See the organization's settings.
    OrgRead,
    /// Change the organization's settings (name, domain allowlist, ...).
    OrgManage,
    /// See who is in the organization.
    MembersRead,
    /// Invite people, change roles, remove or disable members.
    MembersManage,
    /// Create, list and revoke API keys.
    ApiKeysManage,
    /// Read the audit log.
    AuditRead,
    /// See leads, notes, tasks and activity (within the stages the role may work on).
    LeadsRead,
    /// Create and change leads, notes and tasks; move leads between stages the role owns.
    LeadsWrite,
    /// See and work on leads in every stage, whichever role owns it.
    LeadsAllStages,
    /// Delete and merge leads, delete other people's notes, share saved views with the org.
    LeadsManage,
    /// Import leads from files and export lists.
    LeadsTransfer,
    /// Create and change pipelines, stages and custom fields.
    PipelinesManage,
    /// See the organization's background jobs (queue depth, failures) and retry or discard them.
    JobsManage,
    /// Email leads (one-off or from a template) and read the message log of leads they can see.
    EmailSend,
    /// Write email templates and keep the suppression list.
    EmailManage,
    /// Create, change and run automations; see their runs.
    AutomationsManage,
    /// Manage outbound webhooks (subscriptions, secrets, deliveries) and inbound lead forms.
    WebhooksManage,
}

impl Permission {
    pub const ALL: [Permission; 17] = [
        Permission::OrgRead,
        Permission::OrgManage,
        Permission::MembersRead,
        Permission::MembersManage,
        Permission::ApiKeysManage,
        Permission::AuditRead,
        Permission::LeadsRead,
        Permission::LeadsWrite,
        Permission::LeadsAllStages,
        Permission::LeadsManage,
        Permission::LeadsTransfer,
        Permission::PipelinesManage,
        Permission::JobsManage,
        Permission::EmailSend,
        Permission::EmailManage,
        Permission::AutomationsManage,
        Permission::WebhooksManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::OrgRead => "org.read",
            Permission::OrgManage => "org.manage",
            Permission::MembersRead => "members.read",
            Permission::MembersManage => "members.manage",
            Permission::ApiKeysManage => "api_keys.manage",
            Permission::AuditRead => "audit.read",
            Permission::LeadsRead => "leads.read",
            Permission::LeadsWrite => "leads.write",
            Permission::LeadsAllStages => "leads.all_stages",
            Permission::LeadsManage => "leads.manage",
            Permission::LeadsTransfer => "leads.transfer",
            Permission::PipelinesManage => "pipelines.manage",
            Permission::JobsManage => "jobs.manage",
            Permission::EmailSend => "email.send",
            Permission::EmailManage => "email.manage",
            Permission::AutomationsManage => "automations.manage",
            Permission::WebhooksManage => "webhooks.manage",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Manager,
    CaseManager,
    Intake,
    Member,
    Viewer,
}

struct RoleSpec {
    role: Role,
    name: &'static str,
    label: &'static str,
    description: &'static str,
    rank: u8,
    permissions: &'static [Permission],
}

use Permission as P;

const ADMIN_PERMISSIONS: &[Permission] = &[
    P::OrgRead,
    P::OrgManage,
    P::MembersRead,
    P::MembersManage,
    P::ApiKeysManage,
    P::AuditRead,
    P::LeadsRead,
    P::LeadsWrite,
    P::LeadsAllStages,
    P::LeadsManage,
    P::LeadsTransfer,
    P::PipelinesManage,
    P::JobsManage,
    P::EmailSend,
    P::EmailManage,
    P::AutomationsManage,
    P::WebhooksManage,
];
const MANAGER_PERMISSIONS: &[Permission] = &[
    P::OrgRead,
    P::MembersRead,
    P::LeadsRead,
    P::LeadsWrite,
    P::LeadsAllStages,
    P::LeadsManage,
    P::LeadsTransfer,
    P::EmailSend,
    P::EmailManage,
    P::AutomationsManage,
];
const WORKER_PERMISSIONS: &[Permission] = &[
    P::OrgRead,
    P::MembersRead,
    P::LeadsRead,
    P::LeadsWrite,
    P::EmailSend,
];
const READ_PERMISSIONS: &[Permission] = &[P::OrgRead, P::MembersRead, P::LeadsRead];

/// The single source of truth for built-in roles.
const ROLE_TABLE: &[RoleSpec] = &[
    RoleSpec {
        role: Role::Owner,
        name: "owner",
        label: "Owner",
        description: "Full control, including other owners and the organization itself.",
        rank: 100,
        permissions: ADMIN_PERMISSIONS,
    },
    RoleSpec {
        role: Role::Admin,
        name: "admin",
        label: "Admin",
        description: "Manages settings, members below owner, API keys; reads the audit log.",
        rank: 80,
        permissions: ADMIN_PERMISSIONS,
    },
    RoleSpec {
        role: Role::Manager,
        name: "manager",
        label: "Manager",
        description: "Runs the team's work; sees every record in every stage, imports and exports.",
        rank: 60,
        permissions: MANAGER_PERMISSIONS,
    },
    RoleSpec {
        role: Role::CaseManager,
        name: "case_manager",
        label: "Case manager",
        description: "Works records in the stages owned by case managers (after handoff) and unowned stages.",
        rank: 50,
        permissions: WORKER_PERMISSIONS,
    },
    RoleSpec {
        role: Role::Intake,
        name: "intake",
        label: "Intake specialist",
        description: "Works records in the stages owned by intake and unowned stages, then hands them off.",
        rank: 45,
        permissions: WORKER_PERMISSIONS,
    },
    RoleSpec {
        role: Role::Member,
        name: "member",
        label: "Member",
        description: "Works records in the stages owned by members and unowned stages.",
        rank: 40,
        permissions: WORKER_PERMISSIONS,
    },
    RoleSpec {
        role: Role::Viewer,
        name: "viewer",
        label: "Viewer",
        description: "Read-only access to records in unowned stages.",
        rank: 20,
        permissions: READ_PERMISSIONS,
    },
];

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Owner,
        Role::Admin,
        Role::Manager,
        Role::CaseManager,
        Role::Intake,
        Role::Member,
        Role::Viewer,
    ];

    fn spec(self) -> &'static RoleSpec {
        // The table holds one row per variant; `roles_table_is_complete` checks it.
        ROLE_TABLE
            .iter()
            .find(|spec| spec.role == self)
            .unwrap_or(&ROLE_TABLE[ROLE_TABLE.len() - 1])
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    pub fn label(self) -> &'static str {
        self.spec().label
    }

    pub fn description(self) -> &'static str {
        self.spec().description
    }

    pub fn rank(self) -> u8 {
        self.spec().rank
    }

    pub fn permissions(self) -> &'static [Permission] {
        self.spec().permissions
    }

    /// The one authorization question: may a holder of this role do `permission`?
    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    /// Whether a holder of this role may give `target` to someone (invite, role change, API key).
    /// Nobody grants a role above their own, and only owners make owners.
    pub fn may_grant(self, target: Role) -> bool {
        self.allows(Permission::MembersManage) && target.rank() <= self.rank()
    }

    /// Whether a holder of this role may work on records in a stage owned by `owner` (`None`: a
    /// stage anyone may work in). Roles that see every stage may; otherwise only the owning role.
    pub fn may_work_stage(self, owner: Option<Role>) -> bool {
        match owner {
            None => true,
            Some(owner) => owner == self || self.allows(Permission::LeadsAllStages),
        }
    }

    /// Whether a holder of this role may change or remove a member who holds `target`.
    pub fn may_manage_member(self, target: Role) -> bool {
        self.may_grant(target)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ROLE_TABLE
            .iter()
            .find(|spec| spec.name == s)
            .map(|spec| spec.role)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Parses a role from user input with a message fit for a field error.
pub fn parse_role(input: &str) -> Result<Role, String> {
    input.trim().parse().map_err(|_| {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("must be one of {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_table_is_complete() {
        for role in Role::ALL {
            assert_eq!(role.spec().role, role);
            assert_eq!(role.as_str().parse::<Role>().expect("round trip"), role);
        }
        assert_eq!(ROLE_TABLE.len(), Role::ALL.len());
    }

    #[test]
    fn roles_are_ordered() {
        let ranks: Vec<u8> = Role::ALL.iter().map(|r| r.rank()).collect();
        assert!(ranks.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn admins_manage_but_do_not_make_owners() {
        assert!(Role::Admin.allows(Permission::MembersManage));
        assert!(Role::Admin.may_grant(Role::Admin));
        assert!(!Role::Admin.may_grant(Role::Owner));
        assert!(!Role::Admin.may_manage_member(Role::Owner));
        assert!(Role::Owner.may_grant(Role::Owner));
    }

    #[test]
    fn lower_roles_cannot_manage() {
        for role in [Role::Manager, Role::Member, Role::Viewer] {
            assert!(!role.allows(Permission::MembersManage));
            assert!(!role.allows(Permission::ApiKeysManage));
            assert!(!role.allows(Permission::AuditRead));
            assert!(!role.allows(Permission::JobsManage));
            assert!(!role.may_grant(Role::Viewer));
            assert!(role.allows(Permission::MembersRead));
        }
    }

    #[test]
    fn stage_ownership_limits_specialists_not_managers() {
        assert!(Role::Intake.may_work_stage(None));
        assert!(Role::Intake.may_work_stage(Some(Role::Intake)));
        assert!(!Role::Intake.may_work_stage(Some(Role::CaseManager)));
        assert!(!Role::Member.may_work_stage(Some(Role::Intake)));
        assert!(Role::Manager.may_work_stage(Some(Role::CaseManager)));
        assert!(Role::Owner.may_work_stage(Some(Role::Intake)));
        assert!(!Role::Viewer.allows(Permission::LeadsWrite));
        assert!(Role::Intake.allows(Permission::LeadsWrite));
        assert!(!Role::Intake.allows(Permission::LeadsTransfer));
        assert!(Role::Admin.may_grant(Role::CaseManager));
    }

    #[test]
    fn unknown_roles_are_refused() {
        assert!(parse_role("superuser").is_err());
        assert_eq!(parse_role(" admin "), Ok(Role::Admin));
    }
}
