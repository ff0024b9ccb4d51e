//! The web app's pages: handlebars templates compiled once, `{{asset "app.css"}}` naming an
//! asset by its hashed path.

use handlebars::{Handlebars, TemplateError, handlebars_helper};
use serde_json::Value;

const TEMPLATES: [(&str, &str); 11] = [
    ("sign_in", include_str!("../../app/templates/sign_in.hbs")),
    ("sign_up", include_str!("../../app/templates/sign_up.hbs")),
    ("forgot", include_str!("../../app/templates/forgot.hbs")),
    ("reset", include_str!("../../app/templates/reset.hbs")),
    ("rent", include_str!("../../app/templates/rent.hbs")),
    (
        "verification",
        include_str!("../../app/templates/verification.hbs"),
    ),
    ("history", include_str!("../../app/templates/history.hbs")),
    ("wallet", include_str!("../../app/templates/wallet.hbs")),
    (
        "developers",
        include_str!("../../app/templates/developers.hbs"),
    ),
    ("security", include_str!("../../app/templates/security.hbs")),
    ("message", include_str!("../../app/templates/message.hbs")),
];

handlebars_helper!(asset: |name: str| super::assets::path(name));
handlebars_helper!(money: |cents: i64| format_cents(cents));
handlebars_helper!(eq: |a: Value, b: Value| a == b);

/// `1234` → `12.34`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

pub fn registry() -> Result<Handlebars<'static>, TemplateError> {
    let mut registry = Handlebars::new();
    registry.register_helper("asset", Box::new(asset));
    registry.register_helper("money", Box::new(money));
    registry.register_helper("eq", Box::new(eq));
    registry.register_partial("layout", include_str!("../../app/templates/layout.hbs"))?;
    for (name, source) in TEMPLATES {
        registry.register_template_string(name, source)?;
    }
    Ok(registry)
}

/// Renders a page; a rendering failure is a bug, shown as a plain message.
pub fn render(registry: &Handlebars<'static>, name: &str, context: &Value) -> String {
    registry.render(name, context).unwrap_or_else(|error| {
        tracing::error!(%error, template = name, "web app template failed to render");
        "<!doctype html><title>Error</title><p>This page failed to render; the error is in the logs.</p>".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_money_reads_as_money() {
        assert!(registry().is_ok());
        assert_eq!(format_cents(1234), "12.34");
        assert_eq!(format_cents(-5), "-0.05");
    }
}
