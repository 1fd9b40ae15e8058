//! Ctrl-C and SIGTERM as a flag the work checks between steps: the first stops new work
//! and lets what runs reach a clean state; a second one ends the process at once (`main`
//! waits on [`forced`] beside the command).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

/// Woken by a second interrupt.
fn forced_notify() -> &'static (AtomicBool, Notify) {
    static FORCED: OnceLock<(AtomicBool, Notify)> = OnceLock::new();
    FORCED.get_or_init(|| (AtomicBool::new(false), Notify::new()))
}

fn force() {
    let (flag, notify) = forced_notify();
    flag.store(true, Ordering::SeqCst);
    notify.notify_waiters();
}

/// Resolves when the user interrupted twice: time to stop at once.
pub async fn forced() {
    let (flag, notify) = forced_notify();
    let notified = notify.notified();
    if flag.load(Ordering::SeqCst) {
        return;
    }
    notified.await;
}

#[derive(Default)]
pub struct Interrupt {
    flag: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// Starts listening for SIGINT and SIGTERM.
    pub fn listen() -> Arc<Self> {
        let me = Arc::new(Self::default());
        let watcher = me.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            for round in 0.. {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    () = async {
                        match term.as_mut() {
                            Some(t) => { t.recv().await; }
                            None => std::future::pending().await,
                        }
                    } => {}
                }
                if round > 0 {
                    eprintln!("claunch: interrupted again: exiting now");
                    force();
                    return;
                }
                eprintln!("claunch: interrupted: finishing the steps under way, starting nothing new (interrupt again to exit now)");
                watcher.trigger();
            }
        });
        me
    }

    /// Sets the flag (what a signal does; tests call it directly).
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once interrupted.
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        if self.is_set() {
            return;
        }
        notified.await;
    }
}
