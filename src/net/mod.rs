//! The network below one attempt: the shared `ureq::Agent`, which proxy carries a
//! request, the absolute-form transport for plain-HTTP proxies, name resolution,
//! connection reuse, the shared byte-rate limit and HTTP dates as header text.

pub(crate) mod absolute_form;
pub(crate) mod agent;
pub(crate) mod http_date;
pub mod proxy;
pub(crate) mod ratelimit;
pub(crate) mod resolve;
pub(crate) mod reuse;
