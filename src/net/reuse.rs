//! Stale keep-alive connections: telling a pooled connection the server already closed
//! from a server that fails.
//!
//! A server may close an idle keep-alive connection at any moment; ureq probes a pooled
//! connection before reusing it, but a close that races the next request still reaches
//! the caller as "peer disconnected" before any response byte. The server closed the
//! connection rather than answer on it, so the request is sent again at once on another
//! connection and does not count as an attempt. (Any method: the retry policy would retry
//! the same network error anyway, only later and at the cost of an attempt.) The same error
//! on a fresh connection is the server's doing and goes to the retry policy like any
//! network failure.
//!
//! ureq does not say whether a request used a pooled connection, but it calls its
//! connector chain only to open a new one, on the calling thread. [`Marker`] goes first in
//! the chain and notes the thread in the pool's [`Opened`], which the attempt clears
//! before each request ([`Opened::begin`]) and asks after a failure
//! ([`Opened::is_stale`]).
//!
//! ureq probes a connection twice per request: when it goes back to the pool and when it
//! is taken out (three syscalls each on TCP). [`ProbeOnReuse`] keeps the second only: a
//! connection that closed or received stray bytes after its response is found out when
//! it is taken, with the same result, and later, when more of the evidence has arrived.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// The threads that opened a connection since their last [`Opened::begin`]. One per
/// pool, shared by the agent's [`Marker`] and the workers: keyed by thread because ureq
/// gives a connector no handle on the request, only the thread it runs on. Each worker
/// makes one request at a time, so its entry speaks of its current request.
#[derive(Debug, Default)]
pub(crate) struct Opened(Mutex<HashSet<ThreadId>>);

impl Opened {
    fn threads(&self) -> MutexGuard<'_, HashSet<ThreadId>> {
        // The set holds no invariant a panic could break.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets earlier requests of this thread: call before each request.
    pub(crate) fn begin(&self) {
        self.threads().remove(&thread::current().id());
    }

    fn note(&self) {
        self.threads().insert(thread::current().id());
    }

    /// Whether `e`, raised by this thread's request since [`Opened::begin`], is a stale
    /// pooled connection: the request reused a connection and it closed or reset before
    /// any response byte.
    pub(crate) fn is_stale(&self, e: &ureq::Error) -> bool {
        use io::ErrorKind as K;
        matches!(e, ureq::Error::Io(io) if matches!(
            io.kind(),
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe
        )) && !self.threads().contains(&thread::current().id())
    }
}

/// First link of the connector chain: notes that this thread is opening a connection and
/// passes on.
#[derive(Debug, Default)]
pub(crate) struct Marker(pub(crate) Arc<Opened>);

impl Connector<()> for Marker {
    type Out = ();

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<()>, ureq::Error> {
        self.0.note();
        Ok(chained)
    }
}

/// Link of the connector chain after TCP (and before TLS): wraps every new connection in
/// [`Probed`].
#[derive(Debug, Default)]
pub(crate) struct ProbeOnReuse;

impl<In: Transport> Connector<In> for ProbeOnReuse {
    type Out = Probed<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Probed<In>>, ureq::Error> {
        Ok(chained.map(|inner| Probed { inner, busy: true }))
    }
}

/// A connection whose liveness probe is skipped right after a request used it: ureq asks
/// again before it reuses the connection, and that answer counts.
#[derive(Debug)]
pub(crate) struct Probed<T> {
    inner: T,
    /// I/O happened since the last probe: the connection is on its way back to the pool.
    busy: bool,
}

impl<T: Transport> Transport for Probed<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.busy = true;
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.busy = true;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        if std::mem::take(&mut self.busy) {
            return true;
        }
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_reused_connection_that_broke_is_stale() {
        let eof = || ureq::Error::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        let opened = Opened::default();
        opened.begin();
        assert!(opened.is_stale(&eof()));
        assert!(opened.is_stale(&ureq::Error::Io(io::ErrorKind::ConnectionReset.into())));
        assert!(!opened.is_stale(&ureq::Error::Io(io::ErrorKind::ConnectionRefused.into())));
        assert!(!opened.is_stale(&ureq::Error::Timeout(ureq::Timeout::RecvResponse)));
        opened.note();
        assert!(
            !opened.is_stale(&eof()),
            "a fresh connection is the server's doing"
        );
        // Another thread's connection says nothing about this thread's request.
        let other = Opened::default();
        std::thread::scope(|s| {
            s.spawn(|| other.note());
        });
        assert!(other.is_stale(&eof()));
        opened.begin();
        assert!(opened.is_stale(&eof()), "begin forgets the last request");
    }
}
