//! The CLI's media test hooks (`clinicmeet_client::media::MediaObserver`): PSNR of
//! received synthetic pictures (`--psnr-every`), the H.264 of the first remote camera
//! written as received (`--record-video`), and a microphone that keeps sending after
//! a host mute (`--ignore-host-mute`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clinicmeet_client::media::{MediaObserver, VideoTrackObserver};
use clinicmeet_media::capture::synthetic::{decode_embedded, SyntheticCamera};
use clinicmeet_media::capture::{Pacing, VideoFormat, VideoSource};
use clinicmeet_media::frame::VideoFrame;
use clinicmeet_protocol::{TrackInfo, TrackKind};

pub struct CliObserver {
    /// PSNR of every Nth synthetic frame (by embedded frame number; 0 = never).
    psnr_every: u64,
    /// Where the first remote camera track's H.264 goes.
    record_video: Option<PathBuf>,
    /// A remote camera track is being (or was) recorded: only the first one is.
    recording: AtomicBool,
    ignore_host_mute: bool,
}

impl CliObserver {
    pub fn new(psnr_every: u64, record_video: Option<PathBuf>, ignore_host_mute: bool) -> CliObserver {
        CliObserver { psnr_every, record_video, recording: AtomicBool::new(false), ignore_host_mute }
    }
}

impl MediaObserver for CliObserver {
    fn on_video_track(&self, track: &TrackInfo) -> Option<Box<dyn VideoTrackObserver>> {
        let recorder = self
            .record_video
            .as_ref()
            .filter(|_| track.spec.kind == TrackKind::Video)
            .filter(|_| !self.recording.swap(true, Ordering::Relaxed))
            .and_then(|p| match std::fs::File::create(p) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the video recording");
                    None
                }
            });
        Some(Box::new(CliVideoTrack { psnr_every: self.psnr_every, synth: None, recorder }))
    }

    fn should_ignore_host_mute(&self) -> bool {
        self.ignore_host_mute
    }
}

/// The hooks on one remote video track's receive thread.
struct CliVideoTrack {
    psnr_every: u64,
    /// The synthetic camera regenerating reference pictures (made at the received size).
    synth: Option<SyntheticCamera>,
    recorder: Option<std::fs::File>,
}

impl VideoTrackObserver for CliVideoTrack {
    fn wants_received_video(&self) -> bool {
        self.recorder.is_some()
    }

    fn on_received_video(&mut self, annexb: &[u8]) {
        if let Some(f) = self.recorder.as_mut() {
            if let Err(e) = f.write_all(annexb).and_then(|()| f.flush()) {
                tracing::warn!(error = %e, "video recording stopped");
                self.recorder = None;
            }
        }
    }

    fn on_decoded_frame(&mut self, frame: &VideoFrame) -> Option<f64> {
        if self.psnr_every == 0 {
            return None;
        }
        synthetic_psnr(frame, self.psnr_every, &mut self.synth)
    }
}

/// PSNR of a decoded synthetic picture against the same frame regenerated from its
/// embedded frame number and capture time (every `every`th frame).
fn synthetic_psnr(frame: &VideoFrame, every: u64, cam: &mut Option<SyntheticCamera>) -> Option<f64> {
    let (no, cap) = decode_embedded(frame)?;
    if !no.is_multiple_of(every) {
        return None;
    }
    let fits = cam.as_ref().is_some_and(|c| {
        let f = c.format();
        (f.width, f.height) == (frame.width, frame.height)
    });
    if !fits {
        let fmt = VideoFormat { width: frame.width, height: frame.height, fps: 30 };
        *cam = SyntheticCamera::new(fmt, Pacing::Virtual { start_us: 0 }).ok();
    }
    let src = cam.as_ref()?.render(no, cap);
    frame.psnr_luma(&src)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_protocol::{Codec, EncodingSpec, TrackSpec};
    use uuid::Uuid;

    fn track(kind: TrackKind) -> TrackInfo {
        TrackInfo {
            track_id: Uuid::now_v7(),
            participant_id: Uuid::now_v7(),
            spec: TrackSpec {
                kind,
                codec: Codec::H264,
                encodings: vec![EncodingSpec {
                    ssrc: 1,
                    width: 64,
                    height: 48,
                    max_bitrate_bps: 100_000,
                    temporal_layers: 1,
                }],
            },
        }
    }

    fn picture(no: u64) -> VideoFrame {
        let fmt = VideoFormat { width: 320, height: 180, fps: 30 };
        SyntheticCamera::new(fmt, Pacing::Virtual { start_us: 0 }).unwrap().render(no, 1_000 + no * 33_333)
    }

    #[test]
    fn psnr_of_every_nth_synthetic_frame() {
        let obs = CliObserver::new(5, None, false);
        let mut t = obs.on_video_track(&track(TrackKind::Video)).unwrap();
        assert!(!t.wants_received_video());
        assert_eq!(t.on_decoded_frame(&picture(10)), Some(f64::INFINITY));
        assert_eq!(t.on_decoded_frame(&picture(11)), None);
        let mut off = CliObserver::new(0, None, false).on_video_track(&track(TrackKind::Video)).unwrap();
        assert_eq!(off.on_decoded_frame(&picture(10)), None);
    }

    #[test]
    fn records_only_the_first_camera_track() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.h264");
        let obs = CliObserver::new(0, Some(path.clone()), false);
        let screen = obs.on_video_track(&track(TrackKind::Screen)).unwrap();
        assert!(!screen.wants_received_video());
        let mut first = obs.on_video_track(&track(TrackKind::Video)).unwrap();
        assert!(first.wants_received_video());
        let second = obs.on_video_track(&track(TrackKind::Video)).unwrap();
        assert!(!second.wants_received_video());
        first.on_received_video(&[0, 0, 0, 1, 0x65]);
        first.on_received_video(&[0, 0, 0, 1, 0x41]);
        assert_eq!(std::fs::read(&path).unwrap(), [0, 0, 0, 1, 0x65, 0, 0, 0, 1, 0x41]);
    }

    #[test]
    fn ignore_host_mute_is_the_flag() {
        assert!(CliObserver::new(0, None, true).should_ignore_host_mute());
        assert!(!CliObserver::new(0, None, false).should_ignore_host_mute());
    }
}
