//! Child processes that cannot outlive the process that started them.
//!
//! Each child is spawned with `PR_SET_PDEATHSIG`, so the kernel kills it when
//! its parent *thread* exits — including when a test run panics, aborts or is
//! killed. Because the signal follows the spawning thread, children are
//! spawned from one keeper thread that lives until the `Supervisor` is
//! dropped, never from a test's or a runtime's worker thread.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result, anyhow};

enum Request {
    Spawn(Command, PathBuf, mpsc::Sender<Result<u32>>),
    Stop(mpsc::Sender<()>),
}

pub struct Supervisor {
    requests: mpsc::Sender<Request>,
}

impl Supervisor {
    pub fn new() -> Self {
        let (requests, inbox) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("testenv-supervisor".into())
            .spawn(move || keep(inbox))
            .expect("spawn the supervisor thread");
        Supervisor { requests }
    }

    /// Starts `command` with stdout and stderr appended to `log`; returns its pid.
    pub fn spawn(&self, command: Command, log: PathBuf) -> Result<u32> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .send(Request::Spawn(command, log, reply))
            .map_err(|_| anyhow!("supervisor thread is gone"))?;
        answer.recv().map_err(|_| anyhow!("supervisor thread is gone"))?
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let (reply, done) = mpsc::channel();
        if self.requests.send(Request::Stop(reply)).is_ok() {
            let _ = done.recv();
        }
    }
}

/// The signals tests send to processes.
#[derive(Clone, Copy, Debug)]
pub enum Signal {
    /// SIGSTOP: freeze.
    Stop,
    /// SIGCONT: run again after SIGSTOP.
    Continue,
    /// SIGTERM: ask to shut down.
    Terminate,
}

/// Sends `signal` to the process `pid`.
pub fn signal(pid: u32, signal: Signal) -> Result<()> {
    let number = match signal {
        Signal::Stop => libc::SIGSTOP,
        Signal::Continue => libc::SIGCONT,
        Signal::Terminate => libc::SIGTERM,
    };
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) only sends a signal; it touches no memory of ours.
    if unsafe { libc::kill(pid, number) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("send {signal:?} to pid {pid}"));
    }
    Ok(())
}

fn keep(inbox: mpsc::Receiver<Request>) {
    let mut children: Vec<Child> = Vec::new();
    for request in inbox {
        match request {
            Request::Spawn(command, log, reply) => {
                let result = start(command, &log).map(|child| {
                    let pid = child.id();
                    children.push(child);
                    pid
                });
                let _ = reply.send(result);
            }
            Request::Stop(reply) => {
                // Stop in reverse order: the API server before its etcd.
                for child in children.iter_mut().rev() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                let _ = reply.send(());
                return;
            }
        }
    }
}

fn start(mut command: Command, log: &PathBuf) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    command.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("start {:?}", command.get_program()))
}
