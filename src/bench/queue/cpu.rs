//! CPU figures for the queue benchmarks, from /proc: this process, its sandbox ERP
//! threads, and the queue server's process.

/// Thread name of the runtime the benchmark's sandbox ERPs run on.
pub(in crate::bench) const SANDBOX_THREADS: &str = "bench-sandbox";

pub(in crate::bench) fn fmt_cpu(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "n/a".into())
}

/// CPU seconds used so far by this process, by its sandbox ERP threads (a part of it),
/// and by the queue server when its process is known; or, from [`CpuSample::since`],
/// used between two samples.
pub(in crate::bench) struct CpuSample {
    pub process: f64,
    pub sandbox: f64,
    pub emulator: Option<f64>,
}

impl CpuSample {
    pub fn take(emulator: Option<u32>) -> CpuSample {
        CpuSample {
            process: process_cpu_secs(None).unwrap_or(0.0),
            sandbox: threads_cpu_secs(SANDBOX_THREADS).unwrap_or(0.0),
            emulator: emulator.and_then(|p| process_cpu_secs(Some(p))),
        }
    }

    pub fn since(&self, earlier: &CpuSample) -> CpuSample {
        CpuSample {
            process: self.process - earlier.process,
            sandbox: self.sandbox - earlier.sandbox,
            emulator: self.emulator.zip(earlier.emulator).map(|(b, a)| b - a),
        }
    }
}

/// The queue server's process: the one given, else the one listening on the endpoint's port.
pub(in crate::bench) fn emulator_pid(explicit: Option<u32>, endpoint_url: &str) -> Option<u32> {
    explicit.or_else(|| {
        let url = reqwest::Url::parse(endpoint_url).ok()?;
        listener_pid(url.port_or_known_default()?)
    })
}

/// User + system CPU seconds of a process (this one when `pid` is None), from /proc.
pub(super) fn process_cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    stat_cpu_secs(&std::fs::read_to_string(path).ok()?)
}

/// User + system CPU seconds of this process's threads whose name starts with `prefix`.
fn threads_cpu_secs(prefix: &str) -> Option<f64> {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        total += stat_cpu_secs(&stat).unwrap_or(0.0);
    }
    Some(total)
}

/// utime + stime of a `/proc/.../stat` line, in seconds.
fn stat_cpu_secs(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The process listening on a local TCP port (for the queue server's CPU figure).
fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                inodes.extend(f.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}
