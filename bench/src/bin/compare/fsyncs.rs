//! Counting a server's fsync and fdatasync calls over an interval, with `perf stat` on the
//! syscall tracepoints (Debian's linux-perf; `run.sh` installs it). Without perf, or where
//! tracepoints are not allowed, the count is simply absent from the report.

use std::process::{Child, Command, Stdio};

/// A running `perf stat` attached to one process.
#[derive(Debug)]
pub struct FsyncCounter {
    child: Child,
}

impl FsyncCounter {
    /// Starts counting; `None` when perf cannot.
    pub fn start(pid: i32) -> Option<FsyncCounter> {
        let child = Command::new("perf")
            .args([
                "stat",
                "-x,",
                "-e",
                "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync",
                "-p",
                &pid.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        // Give perf a moment to attach before the interval starts.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Some(FsyncCounter { child })
    }

    /// Stops counting; returns fsync + fdatasync calls, if perf reported them.
    pub fn stop(self) -> Option<u64> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let output = self.child.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&output.stderr);
        let mut total = None;
        for line in text.lines() {
            let mut fields = line.split(',');
            let (Some(count), Some(_unit), Some(event)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if event.starts_with("syscalls:sys_enter_f")
                && let Ok(count) = count.trim().parse::<u64>()
            {
                *total.get_or_insert(0) += count;
            }
        }
        total
    }
}
