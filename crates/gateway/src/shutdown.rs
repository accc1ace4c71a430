//! Graceful shutdown as a value: the trigger is held by whoever decides (a signal handler, a
//! test), and every long-lived task holds a [`Shutdown`] it can wait on.

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// Resolves once shutdown has been requested (immediately if it already was).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|s| *s).await;
    }

    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}
