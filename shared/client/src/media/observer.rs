//! Hooks into the media engine for tools and tests (quality measurement, recording
//! what was received, fault injection), kept out of [`MediaConfig`](super::MediaConfig).
//!
//! The engine calls them at fixed points of its threads and does nothing else with
//! them; every method has a no-op default, and [`NoObserver`] is what
//! [`MediaEngine::start`](super::MediaEngine::start) uses. `clinicmeet-cli`
//! implements them for the end-to-end tests (PSNR of synthetic pictures, the
//! received H.264 written to a file, a microphone that ignores a host mute).

use clinicmeet_media::frame::VideoFrame;
use clinicmeet_protocol::TrackInfo;

/// Engine-wide hooks, given to
/// [`MediaEngine::start_with_observer`](super::MediaEngine::start_with_observer).
pub trait MediaObserver: Send + Sync {
    /// A remote video or screen track was subscribed: returns the hooks of its
    /// receive path, which then live on that track's receive thread. Called once per
    /// subscription (again after an unsubscribe/resubscribe or a rejoin), on the
    /// engine's control task: keep it quick.
    fn on_video_track(&self, _track: &TrackInfo) -> Option<Box<dyn VideoTrackObserver>> {
        None
    }

    /// Keep sending the microphone after a host mute (a test hook: the relay must
    /// not forward it). Read whenever the published tracks' on/off state is applied.
    fn should_ignore_host_mute(&self) -> bool {
        false
    }
}

/// Hooks on the receive thread of one remote video or screen track.
pub trait VideoTrackObserver: Send {
    /// Collect the received H.264 (Annex B, as assembled before decoding) for
    /// [`on_received_video`](Self::on_received_video)? Read once, when the track's
    /// receive thread starts.
    fn wants_received_video(&self) -> bool {
        false
    }

    /// The Annex B bytes assembled since the last call (never empty; only when
    /// [`wants_received_video`](Self::wants_received_video) said so).
    fn on_received_video(&mut self, _annexb: &[u8]) {}

    /// A decoded picture, as it is handed to the application. May return its PSNR
    /// (dB, luma) against a reference the observer knows; the engine reports it in
    /// the track's statistics (`TrackStats`, `psnr_db`).
    fn on_decoded_frame(&mut self, _frame: &VideoFrame) -> Option<f64> {
        None
    }
}

/// No hooks: the engine's default.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl MediaObserver for NoObserver {}
