//! The attention capture lives in [`crate::model::capture`] (the backends build it); analysis
//! code keeps reaching it by this path.

pub use crate::model::capture::*;
