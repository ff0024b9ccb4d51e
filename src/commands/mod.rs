//! One module per subcommand family.

pub mod accounts;
pub mod admin;
pub mod check;
pub mod compliance;
pub mod load;
pub mod migrate;
pub mod roles;
pub mod scheduler;
pub mod tenants;
