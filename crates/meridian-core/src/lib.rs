//! Domain types and rules shared by every Meridian feature. Nothing here touches IO, so the rules
//! can be tested and reused (API, web, CLI, workers) without a database.

pub mod contact;
pub mod crm;
pub mod email;
pub mod password;
pub mod pipeline;
pub mod roles;
pub mod search;
pub mod validation;

pub use roles::{Permission, Role};
pub use validation::{FieldError, Validation};
