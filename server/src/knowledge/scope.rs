//! Retrieval scopes: which collections, departments and tags a principal's retrievals may
//! see, what is excluded, and the highest label. A scope compiles to a vector-store filter
//! (intersected with the principal's clearance) and to the Cedar context the re-check uses.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warroom_knowledge::store::ChunkFilter;

use super::{KnowledgeError, KnowledgeResult};
use crate::authz::ScopeRule;
use crate::label::Label;
use crate::storage::entities::scope;

/// A scope as the API takes and shows it. A missing (`null`) inclusion list means "any";
/// an empty list means "none".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub collections: Option<Vec<String>>,
    #[serde(default)]
    pub departments: Option<Vec<String>>,
    /// A chunk is in scope when its document has at least one of these tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub exclude_collections: Vec<String>,
    #[serde(default)]
    pub exclude_departments: Vec<String>,
    #[serde(default)]
    pub exclude_tags: Vec<String>,
    /// The highest label this scope reaches, e.g. `internal` or `confidential:sales`.
    pub max_label: String,
}

/// A validated scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub id: String,
    pub spec: ScopeSpec,
    pub rule: ScopeRule,
}

/// Check a name used for collections, departments, tags and scopes: 1-64 characters a-z,
/// 0-9, '-', '_' or '.', lower-cased.
pub fn parse_slug(what: &str, raw: &str) -> KnowledgeResult<String> {
    let s = raw.trim().to_ascii_lowercase();
    let ok = (1..=64).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        });
    if ok {
        Ok(s)
    } else {
        Err(KnowledgeError::invalid(format!(
            "{what} {raw:?} must be 1-64 characters a-z, 0-9, '-', '_' or '.'"
        )))
    }
}

fn slugs(what: &str, list: &[String]) -> KnowledgeResult<Vec<String>> {
    if list.len() > 256 {
        return Err(KnowledgeError::invalid(format!(
            "at most 256 {what} entries"
        )));
    }
    let mut out: Vec<String> = list
        .iter()
        .map(|s| parse_slug(what, s))
        .collect::<KnowledgeResult<_>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn opt_slugs(what: &str, list: &Option<Vec<String>>) -> KnowledgeResult<Option<Vec<String>>> {
    list.as_ref().map(|l| slugs(what, l)).transpose()
}

impl ScopeSpec {
    /// Validate and normalise (lower-case, sorted, de-duplicated).
    pub fn validate(mut self) -> KnowledgeResult<(ScopeSpec, ScopeRule)> {
        self.name = parse_slug("scope name", &self.name)?;
        if self.description.chars().count() > 500 {
            return Err(KnowledgeError::invalid(
                "description must be at most 500 characters",
            ));
        }
        self.collections = opt_slugs("collection", &self.collections)?;
        self.departments = opt_slugs("department", &self.departments)?;
        self.tags = opt_slugs("tag", &self.tags)?;
        self.exclude_collections = slugs("collection", &self.exclude_collections)?;
        self.exclude_departments = slugs("department", &self.exclude_departments)?;
        self.exclude_tags = slugs("tag", &self.exclude_tags)?;
        let max_label: Label = self
            .max_label
            .parse()
            .map_err(|e| KnowledgeError::invalid(format!("max_label: {e}")))?;
        self.max_label = max_label.to_string();
        let rule = ScopeRule {
            collections: self.collections.clone(),
            departments: self.departments.clone(),
            tags: self.tags.clone(),
            exclude_collections: self.exclude_collections.clone(),
            exclude_departments: self.exclude_departments.clone(),
            exclude_tags: self.exclude_tags.clone(),
            max_label,
        };
        Ok((self, rule))
    }
}

/// The vector-store filter for retrieving under `rule` with clearance `clearance`: the
/// scope's lists, and the meet of the scope's highest label and the clearance.
pub fn compile(rule: &ScopeRule, clearance: &Label) -> ChunkFilter {
    let ceiling = rule.max_label.meet(clearance);
    ChunkFilter {
        collections: rule.collections.clone(),
        departments: rule.departments.clone(),
        tags_any: rule.tags.clone(),
        exclude_collections: rule.exclude_collections.clone(),
        exclude_departments: rule.exclude_departments.clone(),
        exclude_tags: rule.exclude_tags.clone(),
        max_level: ceiling.level.rank(),
        allowed_compartments: ceiling.compartments.into_iter().collect(),
        document_ids: None,
    }
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialise")
}

fn from_json(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

impl Scope {
    /// A stored scope. Stored scopes were validated on write; a row that no longer
    /// validates (edited by hand) is refused rather than guessed at.
    pub fn from_model(m: &scope::Model) -> KnowledgeResult<Scope> {
        let spec = ScopeSpec {
            name: m.name.clone(),
            description: m.description.clone(),
            collections: m.collections.as_deref().map(from_json),
            departments: m.departments.as_deref().map(from_json),
            tags: m.tags.as_deref().map(from_json),
            exclude_collections: from_json(&m.exclude_collections),
            exclude_departments: from_json(&m.exclude_departments),
            exclude_tags: from_json(&m.exclude_tags),
            max_label: m.max_label.clone(),
        };
        let (spec, rule) = spec.validate().map_err(|e| {
            KnowledgeError::internal(format!("stored scope {} is invalid: {e:?}", m.id))
        })?;
        Ok(Scope {
            id: m.id.clone(),
            spec,
            rule,
        })
    }

    /// The columns for storing `spec`.
    pub fn columns(spec: &ScopeSpec) -> [Option<String>; 6] {
        [
            spec.collections.as_deref().map(to_json),
            spec.departments.as_deref().map(to_json),
            spec.tags.as_deref().map(to_json),
            Some(to_json(&spec.exclude_collections)),
            Some(to_json(&spec.exclude_departments)),
            Some(to_json(&spec.exclude_tags)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ScopeSpec {
        ScopeSpec {
            name: "Sales-Agents".into(),
            description: String::new(),
            collections: None,
            departments: Some(vec!["Sales".into(), "sales".into(), "marketing".into()]),
            tags: None,
            exclude_collections: vec![],
            exclude_departments: vec![],
            exclude_tags: vec!["board".into()],
            max_label: "confidential:sales".into(),
        }
    }

    #[test]
    fn validation_normalises_and_refuses_bad_input() {
        let (s, rule) = spec().validate().unwrap();
        assert_eq!(s.name, "sales-agents");
        assert_eq!(
            s.departments,
            Some(vec!["marketing".into(), "sales".into()])
        );
        assert_eq!(rule.max_label.to_string(), "confidential:sales");
        let mut bad = spec();
        bad.max_label = "secret".into();
        assert!(bad.validate().is_err());
        let mut bad = spec();
        bad.departments = Some(vec!["no spaces".into()]);
        assert!(bad.validate().is_err());
    }

    #[test]
    fn filter_is_the_meet_of_scope_and_clearance() {
        let (_, rule) = spec().validate().unwrap();
        let f = compile(&rule, &"internal:sales,hr".parse().unwrap());
        assert_eq!(f.max_level, 1);
        assert_eq!(f.allowed_compartments, vec!["sales".to_string()]);
        let f = compile(&rule, &"restricted".parse().unwrap());
        assert_eq!(f.max_level, 2);
        assert!(f.allowed_compartments.is_empty());
    }
}
