//! Real devices on a machine that may have none (CI has no camera and no sound card):
//! enumeration works, and opening a missing device gives `DeviceNotFound` naming what is
//! missing, never a panic. On a machine with devices, opening them must work instead.

#![cfg(feature = "devices")]

use clinicmeet_media::capture::audio_device::{self, Microphone, Speaker};
use clinicmeet_media::capture::camera::{self, Camera};
use clinicmeet_media::capture::{AudioSource, DeviceKind, VideoFormat, VideoSource};
use clinicmeet_media::MediaError;

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, MediaError>, want: DeviceKind) {
    match r {
        Err(MediaError::DeviceNotFound { kind, detail }) => {
            assert_eq!(kind, want, "wrong device kind in error: {detail}");
            let msg = MediaError::DeviceNotFound { kind, detail }.to_string();
            assert!(msg.contains(&want.to_string()), "message must name the {want}: {msg}");
            println!("{want}: {msg}");
        }
        other => panic!("expected DeviceNotFound for {want}, got {other:?}"),
    }
}

#[test]
fn camera_absent_is_a_clear_error_and_present_camera_streams() {
    let cams = camera::list_cameras().expect("enumeration itself must not fail");
    println!("cameras: {cams:?}");
    assert_not_found(Camera::open(Some("no-such-camera-42"), VideoFormat::P360), DeviceKind::Camera);
    if cams.is_empty() {
        assert_not_found(Camera::open(None, VideoFormat::P360), DeviceKind::Camera);
    } else {
        let mut cam = Camera::open(None, VideoFormat::P360).expect("the camera that is listed must open");
        let f = cam.next_frame().expect("frame");
        assert_eq!((f.width, f.height), (cam.format().width, cam.format().height));
    }
}

#[test]
fn audio_devices_absent_are_clear_errors_and_present_ones_open() {
    println!("audio host: {}", audio_device::audio_host_name());
    let mics = audio_device::list_microphones().expect("enumeration must not fail");
    let speakers = audio_device::list_speakers().expect("enumeration must not fail");
    println!("microphones: {mics:?}\nspeakers: {speakers:?}");
    assert_not_found(Microphone::open(Some("no-such-mic")), DeviceKind::Microphone);
    assert_not_found(Speaker::open(Some("no-such-speaker")), DeviceKind::Speaker);
    if mics.is_empty() {
        assert_not_found(Microphone::open(None), DeviceKind::Microphone);
    } else {
        let mut mic = Microphone::open(None).expect("listed microphone must open");
        assert_eq!(mic.read_frame().expect("a frame").samples.len(), 960);
    }
    if speakers.is_empty() {
        assert_not_found(Speaker::open(None), DeviceKind::Speaker);
    } else {
        Speaker::open(None).expect("listed speaker must open");
    }
}
