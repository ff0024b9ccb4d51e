//! The handlebars templates, built into the binary.

use handlebars::{Handlebars, TemplateError, handlebars_helper};
use serde_json::Value;

const TEMPLATES: [(&str, &str); 12] = [
    ("layout", include_str!("../templates/layout.hbs")),
    ("login", include_str!("../templates/login.hbs")),
    ("overview", include_str!("../templates/overview.hbs")),
    ("errors", include_str!("../templates/errors.hbs")),
    ("parked", include_str!("../templates/parked.hbs")),
    (
        "verifications",
        include_str!("../templates/verifications.hbs"),
    ),
    (
        "verification",
        include_str!("../templates/verification.hbs"),
    ),
    ("webhooks", include_str!("../templates/webhooks.hbs")),
    ("scheduler", include_str!("../templates/scheduler.hbs")),
    ("usage", include_str!("../templates/usage.hbs")),
    ("tenants", include_str!("../templates/tenants.hbs")),
    ("audit", include_str!("../templates/audit.hbs")),
];

// `{{asset "app.css"}}`: the path of an asset by its content-hashed name;
// `{{{integrity "app.css"}}}`: its Subresource Integrity hash.
handlebars_helper!(asset_path: |name: str| crate::assets::path(name));
handlebars_helper!(asset_integrity: |name: str| crate::assets::integrity(name));

pub fn registry() -> Result<Handlebars<'static>, TemplateError> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(false);
    registry.register_helper("asset", Box::new(asset_path));
    registry.register_helper("integrity", Box::new(asset_integrity));
    for (name, source) in TEMPLATES {
        registry.register_template_string(name, source)?;
    }
    // Pages extend the layout as a partial block.
    registry.register_partial("layout", include_str!("../templates/layout.hbs"))?;
    Ok(registry)
}

/// Renders a page; a rendering failure is a bug, shown as a plain message.
pub fn render(registry: &Handlebars<'static>, name: &str, context: &Value) -> String {
    registry.render(name, context).unwrap_or_else(|error| {
        tracing::error!(%error, template = name, "template failed to render");
        "<!doctype html><title>Error</title><p>This page failed to render; the error is in the logs.</p>".to_owned()
    })
}
