//! The scope catalog (`specs/scope.yaml`): the agreed test scope as items with stable ids.
//! Specs name the items they cover; coverage is computed against this list.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diag::Diagnostic;
use super::Pos;

/// Whether an item must be covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeStatus {
    /// In scope: must be covered by at least one spec.
    In,
    /// Explicitly excluded by decision (with a reason); no spec may cover it.
    Out,
    /// Agreed for later; reported but not counted as a gap.
    Backlog,
}

/// The whole catalog.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "focusqa scope catalog")]
pub struct Catalog {
    pub title: String,
    /// Where the scope was agreed (meeting, document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Areas in display order.
    pub areas: Vec<Area>,
    pub items: Vec<ScopeItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Area {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeItem {
    /// Stable id, e.g. `k8s.lifecycle.opened`.
    pub id: String,
    pub title: String,
    /// One of the catalog's area ids.
    pub area: String,
    pub status: ScopeStatus,
    /// Why an item is out of scope or in the backlog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Marks the hard requirement(s) called out in reports.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hard_requirement: bool,
}

impl Catalog {
    pub fn item(&self, id: &str) -> Option<&ScopeItem> {
        self.items.iter().find(|i| i.id == id)
    }

    pub fn area_title<'a>(&'a self, id: &'a str) -> &'a str {
        self.areas
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.title.as_str())
            .unwrap_or(id)
    }

    /// Loads and checks the catalog (unique ids, known areas, reasons for `out` items).
    pub fn load(path: &Path) -> Result<Catalog, Vec<Diagnostic>> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Diagnostic::new(
                &file,
                Pos::default(),
                format!("cannot read the scope catalog: {e}"),
            )]
        })?;
        let (cat, index): (Catalog, _) =
            super::yaml::from_text(&file, &text).map_err(|d| vec![d])?;
        let mut diags = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, item) in cat.items.iter().enumerate() {
            let at = |field: &str| index.get(&format!("items[{i}].{field}"));
            if !seen.insert(item.id.as_str()) {
                diags.push(
                    Diagnostic::new(
                        &file,
                        at("id"),
                        format!("duplicate scope item id `{}`", item.id),
                    )
                    .with_source(&text),
                );
            }
            if !cat.areas.iter().any(|a| a.id == item.area) {
                diags.push(
                    Diagnostic::new(
                        &file,
                        at("area"),
                        format!("unknown area `{}` for item `{}`", item.area, item.id),
                    )
                    .with_hint(super::diag::did_you_mean(
                        &item.area,
                        cat.areas.iter().map(|a| a.id.as_str()),
                    ))
                    .with_source(&text),
                );
            }
            if item.status != ScopeStatus::In
                && item.reason.as_deref().unwrap_or("").trim().is_empty()
            {
                diags.push(
                    Diagnostic::new(
                        &file,
                        at("status"),
                        format!("item `{}` is not in scope but gives no `reason`", item.id),
                    )
                    .with_hint(Some(
                        "say why it is excluded or deferred, e.g. the meeting decision".into(),
                    ))
                    .with_source(&text),
                );
            }
        }
        if diags.is_empty() {
            Ok(cat)
        } else {
            Err(diags)
        }
    }
}
