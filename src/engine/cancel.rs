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
use std::time::Duration;

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

    /// Runs `fut` to its end unless the signal comes and then `grace` passes first (`None`).
    pub fn with_grace<F: Future + Unpin>(&self, fut: F, grace: Duration) -> WithGrace<'_, F> {
        WithGrace {
            fut,
            cancelled: self.cancelled(),
            grace,
            deadline: None,
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

/// The future of [`Cancel::with_grace`]: `fut`'s output, or `None` when the grace that began with
/// the signal passed first.
#[derive(Debug)]
pub struct WithGrace<'a, F> {
    fut: F,
    cancelled: Cancelled<'a>,
    grace: Duration,
    /// Set when the signal came: the end of the grace (boxed: most waits never need it).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<F: Future + Unpin> Future for WithGrace<'_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // The work first: an answer that arrived together with the signal still counts.
        if let Poll::Ready(out) = Pin::new(&mut this.fut).poll(cx) {
            return Poll::Ready(Some(out));
        }
        if this.deadline.is_none() {
            if Pin::new(&mut this.cancelled).poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.deadline = Some(Box::pin(tokio::time::sleep(this.grace)));
        }
        match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(None),
            _ => Poll::Pending,
        }
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

    /// A task that waits on `c` until its signal comes.
    fn spawn_wait(c: &Cancel) -> tokio::task::JoinHandle<()> {
        let c = c.clone();
        tokio::spawn(async move { c.cancelled().await })
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_signal_is_given_and_not_before() {
        let c = Cancel::default();
        let waiting = spawn_wait(&c);
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
        assert!(
            !parent.is_cancelled() && !other.is_cancelled(),
            "a child stops alone"
        );
        let waiting = spawn_wait(&other);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        parent.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the parent's signal reaches a child's waiter")
            .unwrap();
        assert!(
            parent.child().is_cancelled(),
            "a child of a stopped signal starts stopped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn work_in_flight_gets_its_grace_after_the_signal_and_no_more() {
        let c = Cancel::default();
        let grace = Duration::from_secs(5);
        // Done within the grace: its answer counts.
        let (c2, short) = (
            c.clone(),
            Box::pin(tokio::time::sleep(Duration::from_secs(3))),
        );
        let finishing = tokio::spawn(async move { c2.with_grace(short, grace).await });
        // Not done within the grace: cut when it ends.
        let (c3, long) = (
            c.clone(),
            Box::pin(tokio::time::sleep(Duration::from_secs(60))),
        );
        let cut = tokio::spawn(async move {
            let t0 = tokio::time::Instant::now();
            (c3.with_grace(long, grace).await, t0.elapsed())
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.cancel();
        assert_eq!(
            finishing.await.unwrap(),
            Some(()),
            "finished within its grace"
        );
        let (out, took) = cut.await.unwrap();
        assert_eq!(out, None, "cut once the grace passed");
        assert_eq!(
            took,
            Duration::from_secs(6),
            "the grace runs from the signal (at 1 s)"
        );
        // Without a signal nothing is cut, however long it takes.
        let quiet = Cancel::default();
        let slow = Box::pin(tokio::time::sleep(Duration::from_secs(600)));
        assert_eq!(quiet.with_grace(slow, grace).await, Some(()));
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
