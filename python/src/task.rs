//! Long-running work from Python: the lead and reconcile controllers and the forward
//! supervisor run on a thread of their own (with their own tokio runtime) until stopped, while
//! Python goes on. The Python package wraps [`PyTask`] in `kubezen.Controller` and
//! `kubezen.forward.Forwards`.

use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kubezen::cluster::{Cluster, ClusterOptions};
use pyo3::{exceptions::PyRuntimeError, prelude::*};
use tokio_util::sync::CancellationToken;

/// The latest state a task published (JSON text), read by Python at any time.
#[derive(Clone, Default)]
pub(crate) struct State(Arc<Mutex<String>>);

impl State {
    /// Replaces the published state.
    pub(crate) fn publish(&self, json: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = json;
    }

    fn read(&self) -> String {
        let state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.is_empty() {
            "null".to_owned()
        } else {
            state.clone()
        }
    }
}

/// Work running on a thread of its own until it ends or is stopped.
#[pyclass(frozen, module = "kubezen._core", name = "NativeTask")]
pub struct PyTask {
    cancel: CancellationToken,
    state: State,
    worker: Mutex<Option<JoinHandle<PyResult<String>>>>,
    outcome: Mutex<Option<Result<String, PyErr>>>,
}

impl PyTask {
    /// Connects to the cluster `options` name, then runs `work` until it returns or the task
    /// is stopped (its token cancelled). Returns once `work` has called its `started` callback
    /// (or ended): a failed connection or set-up is raised here, not at `stop`.
    pub(crate) fn spawn<F, Fut>(
        py: Python<'_>,
        options: ClusterOptions,
        error: fn(String) -> PyErr,
        work: F,
    ) -> PyResult<Self>
    where
        F: FnOnce(Cluster, CancellationToken, State, Started) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = PyResult<String>>,
    {
        let cancel = CancellationToken::new();
        let state = State::default();
        let (started, is_started) = mpsc::channel();
        let worker = {
            let (cancel, state) = (cancel.clone(), state.clone());
            std::thread::Builder::new()
                .name("kubezen-task".into())
                .spawn(move || {
                    crate::with_cluster(&options, error, |cluster| {
                        work(cluster, cancel, state, Started(started))
                    })
                })
                .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?
        };
        let task = Self {
            cancel,
            state,
            worker: Mutex::new(Some(worker)),
            outcome: Mutex::new(None),
        };
        // Started, or ended (the sender dropped); Ctrl-C meanwhile stops it.
        let is_started = Mutex::new(is_started);
        loop {
            let answer = py.detach(|| {
                is_started
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv_timeout(Duration::from_millis(50))
            });
            match answer {
                Ok(()) => return Ok(task),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    task.stop(py)?;
                    return Ok(task);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(raised) = py.check_signals() {
                        let _ = task.stop(py);
                        return Err(raised);
                    }
                }
            }
        }
    }

    fn finished(&self) -> bool {
        self.worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }
}

/// Called by a task's work once it is set up and running.
pub(crate) struct Started(mpsc::Sender<()>);

impl Started {
    /// Tells the starter the work is running.
    pub(crate) fn signal(self) {
        let _ = self.0.send(());
    }
}

#[pymethods]
impl PyTask {
    /// Whether the work is still running.
    #[getter]
    fn running(&self) -> bool {
        !self.finished()
    }

    /// The latest state the work published, as JSON text (``"null"`` before any).
    fn state(&self) -> String {
        self.state.read()
    }

    /// Waits until the work ends, at most ``timeout`` seconds (None: no limit), with the GIL
    /// released; Ctrl-C raises `KeyboardInterrupt` and leaves the work running. True when it
    /// ended.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = match timeout {
            Some(seconds) => Some(Instant::now() + crate::seconds("timeout", seconds)?),
            None => None,
        };
        let mut pause = Duration::from_micros(250);
        loop {
            if self.finished() {
                return Ok(true);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(false);
            }
            let nap = left.map_or(pause, |left| left.min(pause));
            py.detach(|| std::thread::sleep(nap));
            pause = (pause * 2).min(Duration::from_millis(50));
            py.check_signals()?;
        }
    }

    /// Stops the work (if it still runs), waits for it with the GIL released and returns what
    /// it returned (JSON text), or raises its error. Safe to call again: the same answer.
    fn stop(&self, py: Python<'_>) -> PyResult<String> {
        self.cancel.cancel();
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            let joined = py
                .detach(|| worker.join())
                .unwrap_or_else(|_| Err(PyRuntimeError::new_err("the task's thread panicked")));
            *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(joined);
        }
        // Another thread may be joining it: its answer comes soon.
        loop {
            match self
                .outcome
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                Some(Ok(json)) => return Ok(json.clone()),
                Some(Err(error)) => return Err(error.clone_ref(py)),
                None => {}
            }
            py.detach(|| std::thread::sleep(Duration::from_millis(10)));
        }
    }
}

impl Drop for PyTask {
    /// A task dropped unstopped is stopped: its thread ends with it (not waited for).
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
