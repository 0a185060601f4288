//! Knows when every task of a node has finished, so shutdown can wait for them: each task holds
//! a clone of one sender, and the receiver sees the channel close when the last one is dropped.

use std::future::Future;

use tokio::sync::mpsc;

#[derive(Clone)]
pub(crate) struct Tasks {
    alive: mpsc::Sender<()>,
}

impl Tasks {
    pub fn new() -> (Self, mpsc::Receiver<()>) {
        let (alive, all_done) = mpsc::channel(1);
        (Self { alive }, all_done)
    }

    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let alive = self.alive.clone();
        tokio::spawn(async move {
            task.await;
            drop(alive);
        });
    }
}
