//! Attention analysis over a forward pass's capture: exact rows, sink mass, span mass,
//! pooled maps ([`trace`]), and the JSON report shared by the CLI and the page ([`report`]).

pub mod colour;
pub mod cost;
pub mod explain;
pub mod head_id;
pub mod heads;
pub mod minilab;
pub mod position;
pub mod report;
pub mod trace;

pub use head_id::HeadId;
