//! The run's stop signal (Ctrl-C, SIGTERM, SIGHUP): checked before each step and waited on
//! beside every step in flight.
//!
//! A fan-out registers and drops tens of thousands of such waits a second, so a wait costs one
//! uncontended lock to register and one to leave, and a re-poll with the same waker costs an
//! atomic load. Each fan-out lane takes a [`Cancel::child`], so the waits of one lane never
//! share a lock with another lane's (on another core).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

/// A stop signal shared by clones; [`Cancel::child`] makes one that also stops with this one.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    node: Arc<Node>,
}

#[derive(Debug, Default)]
struct Node {
    cancelled: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_key: u64,
    waiters: Vec<(u64, Waker)>,
    children: Vec<Weak<Node>>,
}

impl Node {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A waker that panicked while registered leaves nothing half-done worth refusing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        // Waiters and children are taken under the lock after the flag is set: a wait or child
        // that registers later sees the flag under the same lock (no lost wake-up).
        let (waiters, children) = {
            let mut st = self.lock();
            (
                std::mem::take(&mut st.waiters),
                std::mem::take(&mut st.children),
            )
        };
        for (_, w) in waiters {
            w.wake();
        }
        for c in children.iter().filter_map(Weak::upgrade) {
            c.cancel();
        }
    }
}

impl Cancel {
    pub fn cancel(&self) {
        self.node.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.node.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the signal is given (at once if it was).
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled {
            node: &self.node,
            key: None,
            waker: None,
        }
    }

    /// A signal of its own that also stops when this one does (not the other way round).
    pub fn child(&self) -> Cancel {
        let child = Arc::new(Node::default());
        let mut st = self.node.lock();
        if self.is_cancelled() {
            child.cancelled.store(true, Ordering::SeqCst);
        } else {
            st.children.retain(|c| c.strong_count() > 0);
            st.children.push(Arc::downgrade(&child));
        }
        Cancel { node: child }
    }
}

/// The future of [`Cancel::cancelled`]; leaves the waiters' list when dropped.
#[derive(Debug)]
pub struct Cancelled<'a> {
    node: &'a Node,
    key: Option<u64>,
    /// The waker registered under `key` (a re-poll by the same task needs no lock).
    waker: Option<Waker>,
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.node.cancelled.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        let this = &mut *self;
        let mut st = this.node.lock();
        if this.node.cancelled.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        match this.key {
            Some(k) => {
                if let Some(slot) = st.waiters.iter_mut().rev().find(|(key, _)| *key == k) {
                    slot.1 = waker.clone();
                }
            }
            None => {
                let k = st.next_key;
                st.next_key += 1;
                st.waiters.push((k, waker.clone()));
                this.key = Some(k);
            }
        }
        this.waker = Some(waker);
        Poll::Pending
    }
}

impl Drop for Cancelled<'_> {
    fn drop(&mut self) {
        let Some(k) = self.key else { return };
        if self.node.cancelled.load(Ordering::SeqCst) {
            return; // the list was emptied when the signal was given
        }
        let mut st = self.node.lock();
        if let Some(i) = st.waiters.iter().rposition(|(key, _)| *key == k) {
            st.waiters.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_wait_ends_when_the_signal_is_given_and_not_before() {
        let c = Cancel::default();
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.cancelled().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "no signal yet: the wait goes on");
        assert!(!c.is_cancelled());
        c.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the signal wakes the waiting task")
            .unwrap();
        assert!(c.is_cancelled());
        // Given already: a new wait is over at once.
        tokio::time::timeout(Duration::from_millis(100), c.cancelled())
            .await
            .expect("ready at once");
    }

    #[tokio::test]
    async fn a_child_stops_with_its_parent_and_alone_without_it() {
        let parent = Cancel::default();
        let child = parent.child();
        let other = parent.child();
        child.cancel();
        assert!(child.is_cancelled());
        assert!(!parent.is_cancelled() && !other.is_cancelled(), "a child stops alone");
        let waiting = tokio::spawn({
            let other = other.clone();
            async move { other.cancelled().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        parent.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the parent's signal reaches a child's waiter")
            .unwrap();
        assert!(parent.child().is_cancelled(), "a child of a stopped signal starts stopped");
    }

    #[tokio::test]
    async fn dropped_waits_leave_the_list() {
        let c = Cancel::default();
        for _ in 0..100 {
            let mut w = Box::pin(c.cancelled());
            let _ = futures::poll!(&mut w);
        }
        assert!(c.node.lock().waiters.is_empty(), "every dropped wait left");
        let mut w = Box::pin(c.cancelled());
        let _ = futures::poll!(&mut w);
        assert_eq!(c.node.lock().waiters.len(), 1);
    }
}
