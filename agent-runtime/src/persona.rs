//! Personas and the templates agents are spawned from. The built-in set
//! covers a typical company: eight departments × three roles.

use serde::{Deserialize, Serialize};

/// How often an agent speaks up on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ActivityLevel {
    /// About one spontaneous turn every four hours.
    Low,
    /// About one an hour.
    Medium,
    /// About four an hour.
    High,
}

impl ActivityLevel {
    /// Expected spontaneous turns per hour.
    pub fn turns_per_hour(self) -> f64 {
        match self {
            ActivityLevel::Low => 0.25,
            ActivityLevel::Medium => 1.0,
            ActivityLevel::High => 4.0,
        }
    }

    /// Parse `low`, `medium` or `high`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            other => Err(format!("activity {other:?} must be low, medium or high")),
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityLevel::Low => "low",
            ActivityLevel::Medium => "medium",
            ActivityLevel::High => "high",
        }
    }
}

/// Who an agent is: what its brain is told about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Persona {
    pub name: String,
    pub department: String,
    pub role: String,
    pub seniority: String,
    pub interests: Vec<String>,
    pub voice: String,
}

/// A kind of agent: a department and a role, with interests and a voice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Template {
    pub name: String,
    pub department: String,
    pub role: String,
    pub seniority: String,
    pub interests: Vec<String>,
    pub voice: String,
    pub activity: ActivityLevel,
}

impl Template {
    /// The persona of an agent of this template called `name`.
    pub fn persona(&self, name: &str) -> Persona {
        Persona {
            name: name.to_string(),
            department: self.department.clone(),
            role: self.role.clone(),
            seniority: self.seniority.clone(),
            interests: self.interests.clone(),
            voice: self.voice.clone(),
        }
    }
}

const DEPARTMENTS: &[(&str, &[&str])] = &[
    (
        "engineering",
        &[
            "firmware",
            "sensor",
            "release",
            "defect",
            "outage",
            "architecture",
            "latency",
            "supplier",
            "calibration",
            "security",
        ],
    ),
    (
        "finance",
        &[
            "budget",
            "forecast",
            "margin",
            "revenue",
            "cash",
            "cost",
            "invoice",
            "acquisition",
            "pricing",
            "audit",
        ],
    ),
    (
        "hr",
        &[
            "hiring",
            "attrition",
            "salary",
            "headcount",
            "retention",
            "training",
            "policy",
            "contractor",
            "morale",
            "benefits",
        ],
    ),
    (
        "legal",
        &[
            "contract",
            "litigation",
            "compliance",
            "liability",
            "warranty",
            "regulation",
            "privacy",
            "patent",
            "clause",
            "export",
        ],
    ),
    (
        "marketing",
        &[
            "campaign",
            "launch",
            "brand",
            "competitor",
            "pricing",
            "pipeline",
            "event",
            "segment",
            "messaging",
            "partner",
        ],
    ),
    (
        "operations",
        &[
            "supplier",
            "inventory",
            "shipment",
            "factory",
            "logistics",
            "capacity",
            "quality",
            "lead",
            "warehouse",
            "procurement",
        ],
    ),
    (
        "sales",
        &[
            "customer",
            "deal",
            "renewal",
            "pipeline",
            "quota",
            "discount",
            "churn",
            "order",
            "account",
            "competitor",
        ],
    ),
    (
        "support",
        &[
            "ticket",
            "complaint",
            "escalation",
            "customer",
            "outage",
            "defect",
            "warranty",
            "return",
            "firmware",
            "churn",
        ],
    ),
];

const ROLES: &[(&str, &str, &str, ActivityLevel)] = &[
    (
        "analyst",
        "junior",
        "precise and factual; quotes numbers and dates",
        ActivityLevel::Medium,
    ),
    (
        "manager",
        "mid",
        "practical; asks what it means for the team and the customer",
        ActivityLevel::Medium,
    ),
    (
        "lead",
        "senior",
        "brief and direct; connects facts across teams and flags risks early",
        ActivityLevel::Low,
    ),
];

/// The templates that ship with the product: `<department>-<role>`.
pub fn builtin_templates() -> Vec<Template> {
    let mut out = Vec::with_capacity(DEPARTMENTS.len() * ROLES.len());
    for (dept, interests) in DEPARTMENTS {
        for (role, seniority, voice, activity) in ROLES {
            out.push(Template {
                name: format!("{dept}-{role}"),
                department: dept.to_string(),
                role: role.to_string(),
                seniority: seniority.to_string(),
                interests: interests.iter().map(|s| s.to_string()).collect(),
                voice: voice.to_string(),
                activity: *activity,
            });
        }
    }
    out
}

/// A built-in template by name.
pub fn template(name: &str) -> Option<Template> {
    builtin_templates().into_iter().find(|t| t.name == name)
}

const FIRST: &[&str] = &[
    "Ada", "Bram", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kai", "Lena",
    "Milo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wes",
    "Yara",
];
const LAST: &[&str] = &[
    "Abbott", "Berg", "Costa", "Diaz", "Ekwueme", "Fischer", "Garcia", "Haddad", "Ito", "Jansen",
    "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Patel", "Quist", "Rossi", "Silva",
    "Tanaka",
];

/// A deterministic human-sounding name for the `n`th agent of a template.
pub fn agent_name(template: &str, n: u64) -> String {
    let h = crate::platform::fnv1a(format!("{template}:{n}").as_bytes());
    let first = FIRST[(h % FIRST.len() as u64) as usize];
    let last = LAST[((h >> 16) % LAST.len() as u64) as usize];
    format!("{first} {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_cover_departments_and_roles() {
        let t = builtin_templates();
        assert_eq!(t.len(), 24);
        assert!(template("sales-analyst").is_some());
        assert!(template("nope").is_none());
        let names: std::collections::HashSet<_> = t.iter().map(|t| &t.name).collect();
        assert_eq!(names.len(), t.len());
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(agent_name("hr-lead", 7), agent_name("hr-lead", 7));
    }
}
