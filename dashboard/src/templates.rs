//! The handlebars templates, built into the binary.

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
    TemplateError, handlebars_helper,
};
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

// `{{{integrity "app.css"}}}`: an asset's Subresource Integrity hash.
handlebars_helper!(asset_integrity: |name: str| crate::assets::integrity(name));

/// The templates, with `{{asset "app.css"}}` giving the URL of an asset by its
/// content-hashed name: under `asset_base` (a CDN) when there is one, else `/static/…`.
pub fn registry(asset_base: Option<&str>) -> Result<Handlebars<'static>, TemplateError> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(false);
    let base = asset_base.unwrap_or_default().to_owned();
    registry.register_helper(
        "asset",
        Box::new(
            move |helper: &Helper,
                  _: &Handlebars,
                  _: &Context,
                  _: &mut RenderContext,
                  out: &mut dyn Output|
                  -> HelperResult {
                let name = helper
                    .param(0)
                    .and_then(|param| param.value().as_str())
                    .ok_or(RenderErrorReason::ParamNotFoundForIndex("asset", 0))?;
                out.write(&handlebars::html_escape(&format!(
                    "{base}{}",
                    crate::assets::path(name)
                )))?;
                Ok(())
            },
        ),
    );
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
