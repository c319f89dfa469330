//! Path-MTU discovery off on both ends (`--mtu-discovery false` on the relay,
//! `--no-mtu-discovery` on the clients): media still flows, in packets sized from
//! the base maximum datagram size.

use std::time::Duration;

use clinicmeet_e2e::*;

#[test]
fn media_flows_with_path_mtu_discovery_off() {
    let clinic = Clinic::new(&["--mtu-discovery", "false"]);
    let (_, code) = clinic.doctor.create(&[]);
    let args = ["--no-mtu-discovery", "--publish", "synthetic", "--video-size", "640x360", "--fps", "30"];
    let mut a = clinic.doctor.join(&code, &args);
    let a_id = my_id(&a.expect_event("joined", STEP));
    let guest = clinic.guest("Guest");
    let mut b = guest.join(&code, &["--no-mtu-discovery", "--stats-interval-ms", "1000"]);
    b.expect_event("joined", STEP);
    std::thread::sleep(Duration::from_secs(6));
    b.drain(Duration::from_millis(200));
    let last = b
        .seen
        .iter()
        .rev()
        .find(|v| v["event"] == "stats" && v["participant_id"] == a_id.as_str() && v["kind"] == "video")
        .cloned()
        .expect("video stats");
    eprintln!("MTU discovery off: {last}");
    assert!(last["fps"].as_f64() >= Some(25.0), "{last}");
    assert!(last["psnr_db"].as_f64() >= Some(30.0), "{last}");
    // Nothing was refused for being larger than the datagram size.
    assert!(!clinic.relay.log().contains("datagram not sent"), "oversized datagrams");
}
