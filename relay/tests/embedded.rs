//! The relay started in-process through the library (`Relay::new` → `start`),
//! as `main.rs` does: it listens, reports its pin, serves a client, shuts down.

mod common;

use clap::Parser as _;
use clinicmeet_protocol::Response;
use clinicmeet_relay::config::{self, Cli};
use clinicmeet_relay::Relay;
use common::Client;

#[tokio::test]
async fn relay_runs_in_process_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::parse_from([
        "clinicmeet-relay",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]);
    let relay = Relay::new(config::resolve(cli.opts).unwrap()).start().await.unwrap();
    assert_ne!(relay.quic.port(), 0);
    assert!(relay.http.is_some());
    assert!(!relay.pin.is_empty());

    let mut c = Client::connect_to(relay.quic, &relay.pin, [127, 0, 0, 1]).await;
    assert!(matches!(c.hello(None).await, Ok(Response::Hello { .. })));
    relay.shutdown().await;
    assert!(c.next().await.is_none(), "the connection ends at shutdown");
}
