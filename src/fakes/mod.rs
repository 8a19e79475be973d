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
