//! The access log (tracing target `shadowcat::access`) as a test reads it: one global subscriber
//! for the whole test binary (each proxy runs Pingora on threads of its own, so a scoped
//! subscriber would see nothing), keeping only that target, formatted as the binary formats it.
//! Tests run side by side, so a test finds its own lines by a unique upstream name.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Sink;

    fn make_writer(&'a self) -> Sink {
        self.clone()
    }
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts capturing (once per test binary); call it before the proxy starts.
pub fn capture() {
    SINK.get_or_init(|| {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("shadowcat::access=info"))
            .with_writer(sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the test binary");
        sink
    });
}

/// Access-log lines for requests to the upstream named `upstream`, once `n` of them are there
/// (the logging phase runs after the client has its response); panics after 5 s.
pub async fn lines(upstream: &str, n: usize) -> Vec<String> {
    let needle = format!("upstream=\"{upstream}\"");
    let mut found = Vec::new();
    for _ in 0..250 {
        let text = String::from_utf8_lossy(&SINK.get().expect("capture() first").0.lock().unwrap())
            .into_owned();
        found = text
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_owned)
            .collect();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{} access-log lines for {upstream}, not {n}: {found:?}",
        found.len()
    );
}

/// The value of `field` in an access-log line (`field=value`, quotes removed).
pub fn field<'a>(line: &'a str, field: &str) -> &'a str {
    let start = line
        .find(&format!(" {field}="))
        .unwrap_or_else(|| panic!("no {field} in {line}"))
        + field.len()
        + 2;
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"').unwrap_or(quoted.len())],
        None => rest.split(' ').next().unwrap_or(""),
    }
}
