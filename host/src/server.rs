//! Listeners: accept connections and serve HTTP/1.1 and h2c through the pipeline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::body;
use crate::node::NodeSlot;
use crate::pipeline;

/// Serve `listener` until the task is dropped.
pub async fn serve(slot: NodeSlot, listener: TcpListener, header_timeout: Duration) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        slot.current()
            .metrics
            .connections
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let slot = slot.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                // The node current when the request arrives serves all of it.
                let node = slot.current();
                // Boxed: hyper keeps the service future inline in a per-connection
                // allocation for the connection's whole life, so an unboxed pipeline
                // future (large: guests, limiter, origin client) would cost every idle
                // keep-alive connection its size (see benches/README.md, "Memory").
                Box::pin(async move {
                    let req = req.map(body::boxed);
                    Ok::<_, std::convert::Infallible>(pipeline::serve(&node, req, peer).await)
                })
            });
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

/// Bind a listener, with a clear error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}
