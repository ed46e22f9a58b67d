//! The label lattice: `public < internal < confidential < restricted`, plus
//! department compartments. A label `L1` is within `L2` when its level is not
//! higher and its compartments are a subset. Labels are written as `level` or
//! `level:dept1,dept2` (compartments lower-case, sorted on output).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A sensitivity level, ordered from least to most sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Public = 0,
    Internal = 1,
    Confidential = 2,
    Restricted = 3,
}

impl Level {
    /// The level as the integer the Cedar policies compare.
    pub fn rank(self) -> i64 {
        self as i64
    }

    fn name(self) -> &'static str {
        match self {
            Level::Public => "public",
            Level::Internal => "internal",
            Level::Confidential => "confidential",
            Level::Restricted => "restricted",
        }
    }
}

/// Why a label string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("unknown level {0:?}: use public, internal, confidential or restricted")]
    UnknownLevel(String),
    #[error("invalid compartment {0:?}: use 1-32 characters a-z, 0-9, '-' or '_'")]
    BadCompartment(String),
    #[error("too many compartments (at most 16)")]
    TooManyCompartments,
}

/// A security label: a level and a set of department compartments.
///
/// As a database column (the `sea-orm` feature) it is stored as its text and
/// read back through the same parser, so a row whose label was changed
/// outside Warroom fails to load instead of loading with a guess.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "sea-orm",
    derive(sea_orm::DeriveValueType),
    sea_orm(value_type = "String")
)]
pub struct Label {
    pub level: Level,
    pub compartments: BTreeSet<String>,
}

impl Label {
    /// A label read back from storage, where every label was checked when it
    /// was written: an unreadable one means the row was changed outside
    /// Warroom. It counts as `fallback`, which the reader picks so that the
    /// row stays at least as closed as what holds it (the channel's label for
    /// a message, the agent's clearance for its notes, `restricted` for a
    /// digest's parts). Input from people is parsed with `str::parse`, which
    /// refuses instead.
    pub fn from_stored(raw: &str, fallback: &Label) -> Label {
        raw.parse().unwrap_or_else(|_| fallback.clone())
    }

    /// A label with a level and no compartments.
    pub fn level(level: Level) -> Self {
        Self {
            level,
            compartments: BTreeSet::new(),
        }
    }

    /// True when `self` may flow into something labelled `other`.
    pub fn within(&self, other: &Label) -> bool {
        self.level <= other.level && self.compartments.is_subset(&other.compartments)
    }

    /// The least label that both `self` and `other` are within.
    pub fn join(&self, other: &Label) -> Label {
        Label {
            level: self.level.max(other.level),
            compartments: self
                .compartments
                .union(&other.compartments)
                .cloned()
                .collect(),
        }
    }

    /// The greatest label within both `self` and `other`.
    pub fn meet(&self, other: &Label) -> Label {
        Label {
            level: self.level.min(other.level),
            compartments: self
                .compartments
                .intersection(&other.compartments)
                .cloned()
                .collect(),
        }
    }
}

fn valid_compartment(c: &str) -> bool {
    (1..=32).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl FromStr for Label {
    type Err = LabelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (level, rest) = match s.split_once(':') {
            Some((l, r)) => (l, Some(r)),
            None => (s, None),
        };
        let level = match level.to_ascii_lowercase().as_str() {
            "public" => Level::Public,
            "internal" => Level::Internal,
            "confidential" => Level::Confidential,
            "restricted" => Level::Restricted,
            _ => return Err(LabelError::UnknownLevel(level.to_string())),
        };
        let mut compartments = BTreeSet::new();
        if let Some(rest) = rest {
            for c in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let c = c.to_ascii_lowercase();
                if !valid_compartment(&c) {
                    return Err(LabelError::BadCompartment(c));
                }
                compartments.insert(c);
            }
        }
        if compartments.len() > 16 {
            return Err(LabelError::TooManyCompartments);
        }
        Ok(Label {
            level,
            compartments,
        })
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.level.name())?;
        if !self.compartments.is_empty() {
            f.write_str(":")?;
            let list: Vec<&str> = self.compartments.iter().map(String::as_str).collect();
            f.write_str(&list.join(","))?;
        }
        Ok(())
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The column type stores the canonical text and reads back only what
    /// the parser accepts.
    #[cfg(feature = "sea-orm")]
    #[test]
    fn a_label_column_round_trips_and_refuses_what_the_parser_refuses() {
        use sea_orm::sea_query::ValueType;
        let label: Label = "confidential:hr,finance".parse().unwrap();
        let stored: sea_orm::Value = label.clone().into();
        assert_eq!(
            stored,
            sea_orm::Value::String(Some("confidential:finance,hr".to_string()))
        );
        assert_eq!(<Label as ValueType>::try_from(stored).unwrap(), label);
        let tampered = sea_orm::Value::String(Some("secret".to_string()));
        assert!(<Label as ValueType>::try_from(tampered).is_err());
    }

    #[test]
    fn parses_and_prints_canonically() {
        let l: Label = "Confidential: HR, finance".parse().unwrap();
        assert_eq!(l.to_string(), "confidential:finance,hr");
        assert_eq!(
            "restricted".parse::<Label>().unwrap().level,
            Level::Restricted
        );
        assert!("secret".parse::<Label>().is_err());
        assert!("internal:Bad Dept".parse::<Label>().is_err());
    }

    #[test]
    fn compartments_restrict_flow() {
        let hr: Label = "confidential:hr".parse().unwrap();
        let conf: Label = "confidential".parse().unwrap();
        let restricted: Label = "restricted".parse().unwrap();
        assert!(conf.within(&hr));
        assert!(!hr.within(&conf));
        assert!(
            !hr.within(&restricted),
            "level alone does not clear a compartment"
        );
        assert!(hr.within(&"restricted:hr,sales".parse().unwrap()));
    }

    fn arb_label() -> impl Strategy<Value = Label> {
        (0..4u8, proptest::collection::btree_set("[a-d]", 0..3)).prop_map(|(l, c)| Label {
            level: [
                Level::Public,
                Level::Internal,
                Level::Confidential,
                Level::Restricted,
            ][l as usize],
            compartments: c,
        })
    }

    proptest! {
        #[test]
        fn join_is_least_upper_bound(a in arb_label(), b in arb_label(), c in arb_label()) {
            let j = a.join(&b);
            prop_assert!(a.within(&j) && b.within(&j));
            if a.within(&c) && b.within(&c) { prop_assert!(j.within(&c)); }
            let m = a.meet(&b);
            prop_assert!(m.within(&a) && m.within(&b));
            prop_assert_eq!(a.to_string().parse::<Label>().unwrap(), a);
        }
    }
}
