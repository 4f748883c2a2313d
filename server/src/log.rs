//! Logs in nats-server's exact shape, because operators' tools parse them:
//! `[PID] YYYY/MM/DD HH:MM:SS.uuuuuu [INF] message`, with `[DBG]` under `-D` and
//! `[TRC]` under `-V`; to stderr or to the `-l` file.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

pub struct NatsFormat {
    pid: u32,
    logtime: bool,
    utc: bool,
}

/// The `[XXX]` tag for a level. `[FTL]` is written by [`fatal`], which exits.
fn tag(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "[ERR]",
        Level::WARN => "[WRN]",
        Level::INFO => "[INF]",
        Level::DEBUG => "[DBG]",
        Level::TRACE => "[TRC]",
    }
}

fn prefix(pid: u32, logtime: bool, utc: bool) -> String {
    if !logtime {
        return format!("[{pid}] ");
    }
    let ts = if utc {
        chrono::Utc::now()
            .format("%Y/%m/%d %H:%M:%S%.6f")
            .to_string()
    } else {
        chrono::Local::now()
            .format("%Y/%m/%d %H:%M:%S%.6f")
            .to_string()
    };
    format!("[{pid}] {ts} ")
}

impl<S, N> FormatEvent<S, N> for NatsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(
            w,
            "{}{} ",
            prefix(self.pid, self.logtime, self.utc),
            tag(event.metadata().level())
        )?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Where log lines go and which levels are on.
pub struct LogConfig {
    pub debug: bool,
    pub trace: bool,
    pub logtime: bool,
    pub utc: bool,
    pub file: Option<String>,
    /// `logfile_size_limit`: past this many bytes the file is rotated (0: never).
    pub size_limit: u64,
    /// `logfile_max_num`: at most this many files, the current one included (0: all).
    pub max_num: usize,
}

static SETTINGS: Mutex<Option<(bool, bool, Option<String>)>> = Mutex::new(None);

pub fn init(cfg: &LogConfig) -> anyhow::Result<()> {
    let level = if cfg.trace {
        Level::TRACE
    } else if cfg.debug {
        Level::DEBUG
    } else {
        Level::INFO
    };
    let format = NatsFormat {
        pid: std::process::id(),
        logtime: cfg.logtime,
        utc: cfg.utc,
    };
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(level)
        .event_format(format);
    match &cfg.file {
        Some(path) => {
            let file = LogFile::open(path, cfg)
                .map_err(|e| anyhow::anyhow!("cannot open log file {path}: {e}"))?;
            builder.with_writer(Mutex::new(file)).try_init()
        }
        None => builder.with_writer(std::io::stderr).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))?;
    if let Ok(mut s) = SETTINGS.lock() {
        *s = Some((cfg.logtime, cfg.utc, cfg.file.clone()));
    }
    Ok(())
}

/// The `-l`/`logfile` file, rotated as nats-server rotates it: once a write takes it
/// past `logfile_size_limit`, it is renamed `<file>.<YYYY.MM.DD.hh.mm.ss.nnnnnnnnn>`, a
/// new file starts with a line naming the backup, and past `logfile_max_num` files
/// the oldest backups are purged (each purge logged).
struct LogFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
    size_limit: u64,
    max_num: usize,
    logtime: bool,
    utc: bool,
}

impl LogFile {
    fn open(path: &str, cfg: &LogConfig) -> std::io::Result<LogFile> {
        let file = Self::create(std::path::Path::new(path))?;
        Ok(LogFile {
            path: path.into(),
            size: file.metadata().map(|m| m.len()).unwrap_or(0),
            file,
            size_limit: cfg.size_limit,
            max_num: cfg.max_num,
            logtime: cfg.logtime,
            utc: cfg.utc,
        })
    }

    /// Logs are readable by the owner's group at most, as nats-server writes them.
    fn create(path: &std::path::Path) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
    }

    fn line(&mut self, msg: &str) {
        let line = format!(
            "{}[INF] {msg}\n",
            prefix(std::process::id(), self.logtime, self.utc)
        );
        if self.file.write_all(line.as_bytes()).is_ok() {
            self.size += line.len() as u64;
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let stamp = chrono::Local::now().format("%Y.%m.%d.%H.%M.%S.%9f");
        let backup = format!("{}.{stamp}", self.path.display());
        std::fs::rename(&self.path, &backup)?;
        self.file = Self::create(&self.path)?;
        self.size = 0;
        self.line(&format!("Rotated log, backup saved as \"{backup}\""));
        if self.max_num == 0 {
            return Ok(());
        }
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let stem = format!(
            "{}.",
            self.path.file_name().unwrap_or_default().to_string_lossy()
        );
        let mut backups: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&stem))
            .collect();
        // The timestamps sort as they read.
        backups.sort();
        let keep = self.max_num.saturating_sub(1);
        let purge = backups.len().saturating_sub(keep);
        for name in backups.into_iter().take(purge) {
            if std::fs::remove_file(dir.join(&name)).is_ok() {
                self.line(&format!("Purged log file \"{name}\""));
            }
        }
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.size += n as u64;
        if self.size_limit > 0 && self.size > self.size_limit {
            // A failed rotation keeps writing to the file we have.
            let _ = self.rotate();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Write a `[FTL]` line where logs go and exit 1, as nats-server does on a fatal error.
pub fn fatal(msg: impl fmt::Display) -> ! {
    let (logtime, utc, file) = SETTINGS
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .unwrap_or((true, false, None));
    let line = format!("{}[FTL] {msg}\n", prefix(std::process::id(), logtime, utc));
    let written = file
        .and_then(|p| std::fs::OpenOptions::new().append(true).open(p).ok())
        .map(|mut f| f.write_all(line.as_bytes()).is_ok())
        .unwrap_or(false);
    if !written {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    std::process::exit(1);
}

/// A URL fit for a log line: the password of `user:pass@` becomes `xxxxx`, as
/// nats-server redacts it, and a bare `token@` is hidden whole.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let hidden = match rest[..at].split_once(':') {
        Some((user, _)) => format!("{user}:xxxxx"),
        None => "xxxxx".to_string(),
    };
    format!("{scheme}://{hidden}{}", &rest[at..])
}

/// `text` with every occurrence of `url` redacted (an error that quotes it).
pub fn redact_in(text: &str, url: &str) -> String {
    text.replace(url, &redact_url(url))
}

#[cfg(test)]
mod redact_tests {
    use super::*;

    #[test]
    fn credentials_in_urls_never_reach_a_log_line() {
        assert_eq!(
            redact_url("nats-leaf://leaf:s3cret@hub:7422"),
            "nats-leaf://leaf:xxxxx@hub:7422"
        );
        assert_eq!(
            redact_url("nats://t0ken@hub:4222/x"),
            "nats://xxxxx@hub:4222/x"
        );
        assert_eq!(redact_url("nats://hub:4222"), "nats://hub:4222");
        assert_eq!(
            redact_in("dial nats://a:b@h:1 failed", "nats://a:b@h:1"),
            "dial nats://a:xxxxx@h:1 failed"
        );
    }
}
