//! Fake platform APIs on 127.0.0.1, for `pasar loadtest` and the tests: [`telegram`] (a Bot API
//! serving several bot tokens, with injectable redeliveries and errors) and [`graph`] (WhatsApp's
//! Graph API, recording every message sent). Each runs on a thread and tokio runtime of its own,
//! so synchronous callers (tests, scenario threads) can drive them. Nothing here is used by
//! `pasar run` itself, and nothing here ever reaches the internet.

pub mod graph;
pub mod telegram;

/// Serves a fake platform API on 127.0.0.1 with a random port, on its own thread and runtime;
/// returns the address.
///
/// # Panics
/// If no port can be bound or no runtime started (the fakes are for tests and load tests).
pub fn serve_on_thread(app: axum::Router) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("addr");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv().expect("fake server started")
}

/// A raw HTTP request to 127.0.0.1:`port`: the status and the body (status 0 when nothing
/// listens or the answer is not HTTP).
pub fn http(port: u16, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    if s.set_read_timeout(Some(std::time::Duration::from_secs(30))).is_err() {
        return (0, String::new());
    }
    // A server may answer (413) and close before it read all of an oversized request: the
    // write fails, the answer is still there to read.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Posts `body` as JSON to `path` on 127.0.0.1:`port` with extra headers; the status (0 when
/// nothing listens).
pub fn post_bytes(port: u16, path: &str, body: &[u8], headers: &[(&str, &str)]) -> u16 {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    http(port, &bytes).0
}
