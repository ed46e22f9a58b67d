//! The payload fields and the filter plan both Qdrant backends compile a
//! [`ChunkFilter`] from, condition for condition as in [`ChunkFilter::matches`].

use super::ChunkFilter;

// Payload keys, as `ChunkPayload` serializes them.
pub(super) const COLLECTION: &str = "collection";
pub(super) const DEPARTMENT: &str = "department";
pub(super) const TAGS: &str = "tags";
pub(super) const COMPARTMENTS: &str = "compartments";
pub(super) const DOCUMENT_ID: &str = "document_id";
pub(super) const LEVEL: &str = "level";

/// A [`ChunkFilter`] in the shape both Qdrant backends compile, condition for condition as
/// in [`ChunkFilter::matches`].
pub(super) struct FilterPlan<'a> {
    /// The field (or, for arrays, one of its elements) must be one of the values.
    pub any_of: Vec<(&'static str, &'a [String])>,
    /// Neither the field nor any of its elements may be one of the values.
    pub none_of: Vec<(&'static str, &'a [String])>,
    pub max_level: i64,
    /// Every compartment of a chunk must be one of these.
    pub allowed_compartments: &'a [String],
}

impl<'a> FilterPlan<'a> {
    /// `None` when an inclusion list is present but empty: no chunk can match, so the
    /// stores answer without asking the engine.
    pub(super) fn new(filter: &'a ChunkFilter) -> Option<Self> {
        let inclusions = [
            (COLLECTION, &filter.collections),
            (DEPARTMENT, &filter.departments),
            (TAGS, &filter.tags_any),
            (DOCUMENT_ID, &filter.document_ids),
        ];
        let mut any_of = Vec::new();
        for (field, list) in inclusions {
            match list.as_deref() {
                Some([]) => return None,
                Some(values) => any_of.push((field, values)),
                None => {}
            }
        }
        let none_of = [
            (COLLECTION, filter.exclude_collections.as_slice()),
            (DEPARTMENT, filter.exclude_departments.as_slice()),
            (TAGS, filter.exclude_tags.as_slice()),
        ]
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .collect();
        Some(FilterPlan {
            any_of,
            none_of,
            max_level: filter.max_level,
            allowed_compartments: &filter.allowed_compartments,
        })
    }
}
