//! The recording's file: fragmented MP4 (H.264 video, Opus audio) through the
//! `muxide` muxer. Fragments of about two seconds go to the file as they fill, so
//! memory stays bounded and a recording cut short (crash, full disk) still plays up
//! to its last fragment.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use clinicmeet_media::codec::h264::EncodedFrame;
use muxide::api::AudioCodec;
use muxide::fragmented::{FragmentAudioConfig, FragmentConfig, FragmentedMuxer};

/// Video timescale of the file (ticks per second).
pub const VIDEO_TIMESCALE: u64 = 90_000;
/// Length of one fragment.
const FRAGMENT_MS: u32 = 2_000;

/// The file being written.
pub struct Mp4Out {
    file: BufWriter<File>,
    width: u32,
    height: u32,
    /// Set up on the first keyframe (the init segment needs its SPS and PPS).
    mux: Option<FragmentedMuxer>,
    bytes: u64,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Mp4Out {
    /// Creates (or truncates) the file; nothing is written before the first keyframe.
    pub fn create(path: &Path, width: u32, height: u32) -> std::io::Result<Mp4Out> {
        let file = BufWriter::new(File::create(path)?);
        Ok(Mp4Out { file, width, height, mux: None, bytes: 0 })
    }

    /// One encoded picture at `pts` (in [`VIDEO_TIMESCALE`] ticks). Pictures before
    /// the first keyframe are skipped (they cannot be decoded).
    pub fn video(&mut self, pts: u64, frame: &EncodedFrame) -> std::io::Result<()> {
        if frame.is_skipped() {
            return Ok(());
        }
        let mut avcc = Vec::with_capacity(frame.size() + 4 * frame.nals.len());
        let (mut sps, mut pps) = (None, None);
        for nal in &frame.nals {
            match nal.nal_type() {
                7 => sps = Some(nal.data.clone()),
                8 => pps = Some(nal.data.clone()),
                _ => {
                    avcc.extend_from_slice(&(nal.data.len() as u32).to_be_bytes());
                    avcc.extend_from_slice(&nal.data);
                }
            }
        }
        if self.mux.is_none() {
            let (Some(sps), Some(pps)) = (sps, pps) else { return Ok(()) };
            let mut config = FragmentConfig::new(self.width, self.height, VIDEO_TIMESCALE as u32)
                .with_fragment_duration_ms(FRAGMENT_MS);
            config.sps = sps;
            config.pps = pps;
            let audio = FragmentAudioConfig { codec: AudioCodec::Opus, sample_rate: 48_000, channels: 1 };
            let mut mux = FragmentedMuxer::new_with_audio(config, audio).map_err(io_err)?;
            let init = mux.init_segment();
            self.write(&init)?;
            self.mux = Some(mux);
        }
        if avcc.is_empty() {
            return Ok(());
        }
        if let Some(mux) = &mut self.mux {
            mux.write_video(pts, pts, &avcc, frame.keyframe).map_err(io_err)?;
        }
        self.flush_ready()
    }

    /// One Opus packet of 20 ms at `pts` (in 48 kHz samples). Dropped before the
    /// first keyframe (the file has no header yet).
    pub fn audio(&mut self, pts: u64, packet: &[u8]) -> std::io::Result<()> {
        let Some(mux) = &mut self.mux else { return Ok(()) };
        mux.write_audio(pts, pts, packet).map_err(io_err)?;
        self.flush_ready()
    }

    fn flush_ready(&mut self) -> std::io::Result<()> {
        let segment = match &mut self.mux {
            Some(mux) if mux.ready_to_flush() => mux.flush_segment(),
            _ => None,
        };
        match segment {
            Some(s) => self.write(&s),
            None => Ok(()),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.flush()?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Writes what is buffered and syncs the file to disk.
    pub fn finish(mut self) -> std::io::Result<u64> {
        if let Some(s) = self.mux.as_mut().and_then(|m| m.flush_segment()) {
            self.write(&s)?;
        }
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        Ok(self.bytes)
    }
}
