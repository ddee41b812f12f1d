//! Who may see and do what in the console: the façade's own extractors
//! (`api::extract::Authorized`), answered as pages instead of the JSON
//! envelope, and what the caller may do beyond the page (which buttons to
//! show). A button hidden here is still refused by the handler behind it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::PageError;
use crate::api::auth::{Caller, Guarded, Permission};
use crate::api::extract::{Access, Authorized, PermissionType, Requirement, ResourceType};
use crate::api::state::{AppState, Shared};

/// [`Authorized<P, R>`]: the same TokenReview, CSRF check and
/// SubjectAccessReview as the REST route behind the page; a refusal is a
/// page (401: to the sign-in; 403 and a forged form: 403).
pub struct Allowed<P, R>(pub Authorized<P, R>);

impl<P, R> Allowed<P, R> {
    pub fn caller(&self) -> &Caller {
        &self.0.caller
    }
}

impl<P: PermissionType, R: ResourceType> FromRequestParts<AppState> for Allowed<P, R> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Authorized::<P, R>::from_request_parts(parts, state)
            .await
            .map(Allowed)
            .map_err(|e| PageError::refused(e, &parts.uri))
    }
}

impl<P: PermissionType, R: ResourceType> Requirement for Allowed<P, R> {
    fn add_to(access: &mut Access) {
        Authorized::<P, R>::add_to(access);
    }
}

/// What the caller may do besides viewing: asked with the same
/// (cached) SubjectAccessReviews the routes behind the buttons ask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Can {
    /// `update dbinstances`: sync capacity, sync accounts, restore.
    pub update_instances: bool,
    /// `delete dbinstances`: recycle.
    pub delete_instances: bool,
    /// `create dbtags`: bulk assign and remove.
    pub tag_instances: bool,
    /// `get dbinventories`: databases, accounts and root status.
    pub read_inventories: bool,
}

impl Can {
    pub async fn ask(state: &Shared, caller: &Caller) -> Result<Can, PageError> {
        let allowed = |permission, guarded| state.auth.allowed(caller, permission, guarded);
        Ok(Can {
            update_instances: allowed(Permission::Update, Guarded::Instances).await?,
            delete_instances: allowed(Permission::Delete, Guarded::Instances).await?,
            tag_instances: allowed(Permission::Create, Guarded::Tags).await?,
            read_inventories: allowed(Permission::Get, Guarded::Inventories).await?,
        })
    }

    /// Everything: for the benchmark and for pages rendered in tests.
    pub fn everything() -> Can {
        Can {
            update_instances: true,
            delete_instances: true,
            tag_instances: true,
            read_inventories: true,
        }
    }
}
