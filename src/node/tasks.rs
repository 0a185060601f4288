//! Who owns the node's tasks: every task the node spawns is tracked by one `TaskTracker` and
//! watches one `CancellationToken` (or a child of it, one per feed instance), so stopping the
//! node cancels them all and waits for them, bounded; stopping one feed instance cancels only its
//! own tasks.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A scope of tasks: spawns into the node's tracker, cancelled with its token.
#[derive(Clone, Default)]
pub struct NodeTasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl NodeTasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `task` into the node's tracker. The task itself must end when [`Self::token`]
    /// is cancelled.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Spawns `task`, dropped as soon as this scope is cancelled: for work whose only effect
    /// is its result (an observation, a decision), not for writes that must finish.
    pub fn spawn_cancellable<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            cancel.run_until_cancelled(task).await;
        })
    }

    /// This scope's token (cancelled when it, or a scope it was made from, stops).
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// A narrower scope (one feed instance): the same tracker, a child token, so cancelling it
    /// leaves the rest of the node running and cancelling the node cancels it.
    pub fn child(&self) -> Self {
        Self {
            tracker: self.tracker.clone(),
            cancel: self.cancel.child_token(),
        }
    }

    /// Cancels this scope's tasks.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Tasks spawned and not finished yet, node-wide.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Cancels every task and waits up to `timeout` for them all to finish; `false` when some
    /// did not (a stuck database must not hold the shutdown past the supervisor's grace).
    pub async fn stop(&self, timeout: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_cancels_and_joins_every_task_of_every_scope() {
        let tasks = NodeTasks::new();
        let feed = tasks.child();
        for scope in [&tasks, &feed] {
            let token = scope.token();
            scope.spawn(async move { token.cancelled().await });
            scope.spawn_cancellable(std::future::pending());
        }
        assert_eq!(tasks.running(), 4);
        assert!(tasks.stop(Duration::from_secs(5)).await);
        assert_eq!(tasks.running(), 0);
    }

    #[tokio::test]
    async fn cancelling_one_feed_scope_leaves_the_others_running() {
        let tasks = NodeTasks::new();
        let (one, two) = (tasks.child(), tasks.child());
        let first = one.spawn_cancellable(std::future::pending());
        two.spawn_cancellable(std::future::pending());
        one.cancel();
        tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .expect("the cancelled scope's task ends")
            .expect("not panicked");
        assert_eq!(tasks.running(), 1);
        assert!(!two.token().is_cancelled());
        assert!(tasks.stop(Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn a_task_that_ignores_cancellation_is_reported_after_the_timeout() {
        let tasks = NodeTasks::new();
        tasks.spawn(std::future::pending());
        assert!(!tasks.stop(Duration::from_millis(50)).await);
        assert_eq!(tasks.running(), 1);
    }
}
