//! Identifiers. UUIDv7 keeps new rows at the right-hand end of their indexes.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses the textual form; anything else is `None`.
            pub fn parse(text: &str) -> Option<Self> {
                Uuid::parse_str(text).ok().map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A verification: one rented number for one service.
    VerificationId
);
id_type!(
    /// A customer account, which holds a balance.
    AccountId
);
id_type!(
    /// A tenant (white-label brand) that accounts belong to.
    TenantId
);

impl TenantId {
    /// The tenant every installation starts with (see the first migration).
    pub const DEFAULT: TenantId = TenantId(Uuid::from_u128(1));
}

/// A fresh trace id: 32 hex digits, as W3C trace context spells them.
pub fn new_trace_id() -> String {
    Uuid::new_v4().simple().to_string()
}
