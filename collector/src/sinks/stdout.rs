//! Writes each event as one NDJSON line to standard output, for piping into other tools.

use tokio::io::AsyncWriteExt;

use crate::sinks::meta::EventMeta;
use crate::sinks::{Sink, SinkError};
use crate::spool::Record;

pub struct StdoutSink {
    out: tokio::io::Stdout,
    buf: Vec<u8>,
}

impl StdoutSink {
    pub fn new() -> StdoutSink {
        StdoutSink {
            out: tokio::io::stdout(),
            buf: Vec::new(),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    async fn deliver<'a>(&'a mut self, records: &'a [Record]) -> Result<(), SinkError> {
        self.buf.clear();
        for r in records {
            self.buf.extend_from_slice(EventMeta::split(&r.payload).1);
            self.buf.push(b'\n');
        }
        self.out
            .write_all(&self.buf)
            .await
            .map_err(SinkError::transient)?;
        self.out.flush().await.map_err(SinkError::transient)
    }
}
