//! Builds the one `ureq::Agent` that all workers share, from the [`Config`].
//!
//! Every ureq default that would hurt a bulk downloader is set explicitly here: statuses
//! are not errors (a 503 keeps its `Retry-After`), redirects are followed by
//! [`crate::fetch`] (so every hop is checked and recorded), timeouts are on, the idle
//! pool holds a connection per worker, and the environment's proxy variables are ignored
//! unless the caller asked for them.

use ureq::unversioned::transport::{Connector, DefaultConnector};

use crate::config::Config;
use crate::error::Error;
use crate::resolve::CachingResolver;
use crate::reuse;

pub(crate) fn build(config: &Config) -> Result<ureq::Agent, Error> {
    let idle = config.workers.max(config.per_host).max(4);
    let agent_config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_connect(Some(config.connect_timeout))
        .timeout_per_read(Some(config.idle_timeout))
        .timeout_per_write(Some(config.idle_timeout))
        .max_idle_connections(idle * 2)
        .max_idle_connections_per_host(idle)
        .proxy(None)
        .user_agent(config.user_agent.as_str())
        .build();
    // The marker tells a stale pooled connection from a fresh one (see `reuse`).
    let connector = reuse::Marker.chain(DefaultConnector::new());
    Ok(ureq::Agent::with_parts(
        agent_config,
        connector,
        CachingResolver::default(),
    ))
}
