//! Which tenant a request belongs to.
//!
//! Until authentication lands, the tenant is named by the `x-danaus-tenant`
//! metadata key and defaults to `default`; every key the leaf stores is
//! namespaced by it, and no read crosses tenants.

use tonic::{Request, Status};

/// Metadata key naming the tenant.
pub const TENANT_HEADER: &str = "x-danaus-tenant";

/// The request's tenant, validated.
pub fn tenant<T>(req: &Request<T>) -> Result<String, Status> {
    let Some(v) = req.metadata().get(TENANT_HEADER) else {
        return Ok(danaus_model::DEFAULT_TENANT.to_owned());
    };
    let s = v.to_str().map_err(|_| Status::invalid_argument(format!("{TENANT_HEADER} must be ASCII")))?;
    tenant_name(Some(s)).map_err(Status::invalid_argument)
}

/// Validates a tenant named by a header (any protocol); `None` is the
/// default tenant.
pub fn tenant_name(value: Option<&str>) -> Result<String, String> {
    let Some(s) = value else { return Ok(danaus_model::DEFAULT_TENANT.to_owned()) };
    if s.is_empty() || s.len() > 64 || !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err(format!("{TENANT_HEADER} {s:?} is not a valid tenant name (1-64 characters of [A-Za-z0-9_.-])"));
    }
    Ok(s.to_owned())
}
