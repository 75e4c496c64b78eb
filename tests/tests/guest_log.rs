//! A guest cannot flood the node's log: its own binary, so the log it reads is the
//! node's alone.

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use outpost_tests::{TestNode, TestOrigin, config};

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_writing_ten_thousand_lines_a_call_is_capped() {
    let sink = Sink::default();
    let writer = sink.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .init();
    let origin = TestOrigin::start().await;
    let node = TestNode::new(&config(
        origin.addr,
        &[("chatty", "chatty", "")],
        "request = [\"chatty\"]",
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(node.get("/echo").await.status, StatusCode::OK);
    }
    let log =
        String::from_utf8_lossy(&sink.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let lines = log.lines().filter(|l| l.contains("chatty-line")).count();
    let notes = log
        .lines()
        .filter(|l| l.contains("dropping the rest"))
        .count();
    // 64 lines per fresh instance, and one note each that the rest was dropped.
    assert_eq!(lines, 3 * 64, "{lines} lines");
    assert_eq!(notes, 3, "{log}");
}
