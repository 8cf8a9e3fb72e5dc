//! The threads that run password hashes: a few dedicated OS threads at a background
//! scheduling priority, so that a burst of logins takes only the CPU time that token
//! validation and request serving leave over.
//!
//! tokio's blocking pool would run the hashes off the async workers too, but its threads are
//! shared with every other blocking task (file I/O, DNS) and have normal priority: a hash
//! there competes on equal terms with the serving threads for the same cores, and the
//! serving threads' tail latency shows it. Dedicated threads can be deprioritised without
//! affecting anything else.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// How the hashing threads are scheduled (Linux; elsewhere they keep the process's
/// priority). `[auth] password_hash_priority` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashPriority {
    /// `SCHED_IDLE`: a hash runs only on a core that nothing else wants, and any other
    /// thread that wakes up takes the core from it at once. Logins then barely lengthen
    /// validation's tail (what remains is contention for caches and memory); when other
    /// work saturates the cores, logins wait.
    #[default]
    Idle,
    /// Niceness 10, the conventional background priority: by weight, a hash gets about a
    /// tenth of a core that a normal thread also wants, but a waking serving thread may
    /// wait for the running hash's time slice (a few milliseconds) to end.
    Low,
}

/// The niceness of [`HashPriority::Low`] threads.
pub(crate) const LOW_NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of hashing threads fed by one queue. The threads end when the pool is
/// dropped (after finishing what was queued).
pub(crate) struct HashPool {
    jobs: Sender<Job>,
}

impl HashPool {
    /// Starts `threads` (at least one) threads named `portico-argon2-<n>` at `priority`. A
    /// thread that the system refuses to start is logged; the others serve the queue.
    pub(crate) fn new(threads: usize, priority: HashPriority) -> Self {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("portico-argon2-{n}"))
                .spawn(move || {
                    deprioritise(priority);
                    serve(&queue);
                });
            if let Err(error) = started {
                tracing::error!(%error, "could not start a password-hashing thread");
            }
        }
        Self { jobs }
    }

    /// Queues `job`. `false` when no hashing thread is left to run it.
    pub(crate) fn execute(&self, job: impl FnOnce() + Send + 'static) -> bool {
        self.jobs.send(Box::new(job)).is_ok()
    }
}

fn serve(queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while one runs.
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else {
            return; // the pool was dropped
        };
        // A panicking job drops its reply channel, which its caller sees as a failure; the
        // thread stays to serve the next one.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

/// Puts the calling thread at `priority`. Linux schedules each thread on its own, so this
/// touches no other thread. A failure is logged; the thread then runs at what the system
/// let it have (at worst the process's priority).
fn deprioritise(priority: HashPriority) {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let outcome = match priority {
            HashPriority::Idle => set_thread_priority_and_policy(
                thread_native_id(),
                // The niceness is meaningless under SCHED_IDLE; 0 is the only value accepted.
                ThreadPriority::Min,
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
            )
            .map_err(|error| format!("{error:?}")),
            HashPriority::Low => {
                use rustix::process::{getpriority_process, setpriority_process};
                // `None` is the calling thread. Never raise a priority the process was
                // already given below ours.
                match getpriority_process(None) {
                    Ok(current) if current >= LOW_NICENESS => Ok(()),
                    _ => setpriority_process(None, LOW_NICENESS).map_err(|e| e.to_string()),
                }
            }
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, ?priority, "could not fully lower a password-hashing thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}
