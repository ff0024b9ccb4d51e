//! Domain values that can only be built valid, so the code that receives them never
//! re-checks: a `ServiceCode` is a well-formed service code, a `Cents` is never negative.

mod api_key;
mod codes;
mod ids;
mod money;
mod status;

pub use api_key::{ApiKey, ApiKeyHash, OWNER_SCOPES, Scope};
pub use codes::{CountryCode, InvalidCode, ServiceCode, Tier};
pub use ids::{AccountId, TenantId, VerificationId, new_trace_id};
pub use money::{Cents, deserialize_whole_cents};
pub use status::{Status, Transition, UnknownStatus};
