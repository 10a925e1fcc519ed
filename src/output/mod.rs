//! Files on disk: where a body is written, how it is kept for a resume, and when a file
//! already there is the one a job wants.

pub(crate) mod check;
pub(crate) mod nofollow;
pub(crate) mod sidecar;
pub(crate) mod unnamed;
