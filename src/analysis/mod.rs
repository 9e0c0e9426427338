//! Attention analysis over a forward pass's capture (`model::capture`: exact rows, sink and
//! span mass, pooled maps): the JSON report shared by the CLI and the page ([`report`]),
//! inside one head ([`explain`]), head patterns ([`heads`]), positions, cost, colours.

pub mod colour;
pub mod compare;
pub mod cost;
pub mod explain;
pub mod head_id;
pub mod heads;
pub mod lens;
pub mod minilab;
pub mod position;
pub mod report;
pub mod through_model;
pub mod vectors;

pub use head_id::HeadId;
