//! Send and receive streams that tie codecs, RTP and the jitter/frame buffers
//! together, for the client engine. Sans-IO: they take frames and datagram bytes
//! with an explicit `now` and return bytes to send; the caller owns sockets and clocks.

use crate::codec::h264::{DecodeOutcome, EncodedFrame, H264Config, H264Decoder, H264Encoder};
use crate::codec::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use crate::error::{MediaError, Result};
use crate::frame::{AudioFrame, VideoFrame};
use crate::jitter::{AudioJitterBuffer, JitterConfig, JitterOutput};
use crate::video_receiver::{
    AssembledFrame, PacketHistory, ReceiverEvent, ReceiverStats, VideoReceiver, VideoReceiverConfig,
};
use clinicmeet_rtp::ext::AudioLevel;
use clinicmeet_rtp::h264::H264RtpSender;
use clinicmeet_rtp::opus::{opus_payload, OpusRtpSender};
use clinicmeet_rtp::RtpView;

/// One H.264 encoding of a simulcast set.
#[derive(Debug)]
struct Encoding {
    spatial_id: u8,
    /// How many times the source is halved for this encoding.
    halvings: u32,
    enc: H264Encoder,
    rtp: H264RtpSender,
    history: PacketHistory,
}

/// Video send stream: one or two simulcast encodings (full and low resolution),
/// each with its own SSRC (the configured one plus the spatial id, see [`VideoSender::ssrc_of`]),
/// temporal layers, packetization and a retransmission history.
#[derive(Debug)]
pub struct VideoSender {
    encodings: Vec<Encoding>,
}

/// Settings of a video send stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSenderConfig {
    /// The full-resolution encoding (spatial id 1 when a low layer exists, else 0).
    pub main: H264Config,
    /// Bitrate of an extra low-resolution encoding (about 320x180), `None` for no simulcast.
    pub low_bitrate_bps: Option<u32>,
    /// SSRC of the lowest encoding; higher encodings use the following values.
    pub ssrc: u32,
    pub max_packet_size: usize,
}

impl VideoSender {
    pub fn new(cfg: VideoSenderConfig) -> Result<Self> {
        let mut encodings = Vec::new();
        let mut next_id = 0u8;
        if let Some(low_bps) = cfg.low_bitrate_bps {
            // Halve until the width is at most 360 (1280→320, 640→320).
            let mut halvings = 0;
            let (mut w, mut h) = (cfg.main.width, cfg.main.height);
            while w > 360 && h > 32 {
                w = w.div_ceil(2);
                h = h.div_ceil(2);
                halvings += 1;
            }
            if halvings == 0 {
                return Err(MediaError::InvalidArgument(
                    "simulcast needs a main encoding wider than 360".into(),
                ));
            }
            let low = H264Config { width: w, height: h, bitrate_bps: low_bps, ..cfg.main };
            encodings.push(Encoding {
                spatial_id: 0,
                halvings,
                enc: H264Encoder::new(low)?,
                rtp: H264RtpSender::new(cfg.ssrc, 0),
                history: PacketHistory::new(1_024, 3_000_000),
            });
            next_id = 1;
        }
        encodings.push(Encoding {
            spatial_id: next_id,
            halvings: 0,
            enc: H264Encoder::new(cfg.main)?,
            rtp: H264RtpSender::new(cfg.ssrc.wrapping_add(u32::from(next_id)), 0),
            history: PacketHistory::new(2_048, 3_000_000),
        });
        for e in &mut encodings {
            e.rtp.spatial_id = e.spatial_id;
            e.rtp.temporal_layers = e.enc.config().temporal_layers;
            e.rtp.set_max_packet_size(cfg.max_packet_size)?;
        }
        Ok(VideoSender { encodings })
    }

    /// SSRC of an encoding.
    pub fn ssrc_of(&self, spatial_id: u8) -> Option<u32> {
        self.encodings.iter().find(|e| e.spatial_id == spatial_id).map(|e| e.rtp.ssrc)
    }

    /// Encodes one captured frame in every encoding; returns serialized RTP packets
    /// (lowest encoding first) and remembers them for retransmission.
    pub fn send_frame(&mut self, frame: &VideoFrame, now_us: u64) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut scaled: Option<VideoFrame> = None;
        for e in &mut self.encodings {
            let encoded: EncodedFrame = if e.halvings == 0 {
                e.enc.encode(frame)?
            } else {
                let mut f = scaled.take().unwrap_or_else(|| frame.downscale_half());
                for _ in 1..e.halvings {
                    f = f.downscale_half();
                }
                let r = e.enc.encode(&f)?;
                scaled = Some(f);
                r
            };
            for p in e.rtp.packetize(&encoded)? {
                let bytes = p.to_bytes();
                e.history.push(p.sequence, bytes.clone(), now_us);
                out.push(bytes);
            }
        }
        Ok(out)
    }

    /// Packets to resend for a NACK of `ssrc`.
    pub fn on_nack(&self, ssrc: u32, lost: &[u16], now_us: u64) -> Vec<Vec<u8>> {
        match self.encodings.iter().find(|e| e.rtp.ssrc == ssrc) {
            Some(e) => e.history.retransmissions(lost, now_us).map(<[u8]>::to_vec).collect(),
            None => Vec::new(),
        }
    }

    /// A keyframe request (PLI) for `ssrc`, or all encodings with `None`.
    pub fn on_pli(&mut self, ssrc: Option<u32>) {
        for e in &mut self.encodings {
            if ssrc.is_none_or(|s| s == e.rtp.ssrc) {
                e.enc.request_keyframe();
            }
        }
    }

    /// Changes the bitrate of one encoding.
    pub fn set_bitrate(&mut self, spatial_id: u8, bps: u32) -> Result<()> {
        match self.encodings.iter_mut().find(|e| e.spatial_id == spatial_id) {
            Some(e) => e.enc.set_bitrate(bps),
            None => Err(MediaError::InvalidArgument(format!("no encoding {spatial_id}"))),
        }
    }

    /// Sets the largest RTP packet (from the QUIC maximum datagram size).
    pub fn set_max_packet_size(&mut self, bytes: usize) -> Result<()> {
        Ok(self.encodings.iter_mut().try_for_each(|e| e.rtp.set_max_packet_size(bytes))?)
    }
}

/// A decoded picture with its timing.
#[derive(Debug)]
pub struct DecodedVideo {
    pub frame: VideoFrame,
    pub rtp_timestamp: u32,
    /// Capture time from the RTP extension, on the sender's media clock (µs).
    pub capture_us: Option<u64>,
    /// An IDR picture (decoding restarted here).
    pub keyframe: bool,
}

/// What [`VideoDecodeStream::decode`] made of one assembled frame.
#[derive(Debug)]
pub enum Decoded {
    Picture(DecodedVideo),
    /// Accepted, no picture yet.
    Nothing,
    /// Undecodable or references missing: ask the sender for a keyframe.
    NeedsKeyframe,
}

/// Video decode stream: the decoder of one remote track, fed the frames its
/// [`VideoReceiver`](crate::video_receiver::VideoReceiver) assembled (frame
/// assembly, NACKs and keyframe requests live with the receiver, not here).
#[derive(Debug)]
pub struct VideoDecodeStream {
    dec: H264Decoder,
    pub decoded: u64,
    /// Annex B of the assembled frames (as received, before decoding), when recording.
    recorded: Option<Vec<u8>>,
}

impl VideoDecodeStream {
    pub fn new() -> Result<Self> {
        Ok(VideoDecodeStream { dec: H264Decoder::new()?, decoded: 0, recorded: None })
    }

    /// Starts (or stops) keeping the Annex B bytes of every frame decoded.
    pub fn set_recording(&mut self, on: bool) {
        self.recorded = on.then(Vec::new);
    }

    /// The Annex B bytes fed since the last call (empty when not recording).
    pub fn take_recorded(&mut self) -> Vec<u8> {
        self.recorded.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Decodes one assembled frame.
    pub fn decode(&mut self, f: &AssembledFrame) -> Decoded {
        if let Some(rec) = self.recorded.as_mut() {
            rec.extend_from_slice(&crate::codec::h264::annex_b(f.nals.iter().map(|n| n.as_slice())));
        }
        match self.dec.decode_nals(f.nals.iter().map(|n| n.as_slice())) {
            DecodeOutcome::Frame(mut pic) => {
                pic.capture_us = f.capture_us.unwrap_or(0);
                self.decoded += 1;
                Decoded::Picture(DecodedVideo {
                    frame: pic,
                    rtp_timestamp: f.rtp_timestamp,
                    capture_us: f.capture_us,
                    keyframe: f.keyframe,
                })
            }
            DecodeOutcome::NeedsKeyframe => Decoded::NeedsKeyframe,
            DecodeOutcome::NoFrame => Decoded::Nothing,
        }
    }
}

/// Video receive stream: a [`VideoReceiver`] (frame assembly, NACK list, keyframe
/// requests) and its [`VideoDecodeStream`] in one, for one SSRC. (The client
/// engine keeps the two apart: assembly in its media core, decoding on a thread.)
#[derive(Debug)]
pub struct VideoReceiveStream {
    rx: VideoReceiver,
    dec: VideoDecodeStream,
    /// Frames abandoned since the last [`take_skips`](Self::take_skips) (for logs).
    skips: Vec<ReceiverEvent>,
}

impl VideoReceiveStream {
    pub fn new(cfg: VideoReceiverConfig) -> Result<Self> {
        Ok(VideoReceiveStream {
            rx: VideoReceiver::new(cfg),
            dec: VideoDecodeStream::new()?,
            skips: Vec::new(),
        })
    }

    /// A received RTP packet.
    pub fn on_packet(&mut self, bytes: &[u8], now_us: u64) -> Result<()> {
        let v = RtpView::parse(bytes)?;
        self.rx.insert(&v, now_us);
        Ok(())
    }

    /// Decodes every frame that is complete.
    pub fn poll_frames(&mut self, now_us: u64) -> Vec<DecodedVideo> {
        let mut out = Vec::new();
        while let Some(ev) = self.rx.poll(now_us) {
            match ev {
                ReceiverEvent::Frame(f) => match self.dec.decode(&f) {
                    Decoded::Picture(d) => out.push(d),
                    Decoded::NeedsKeyframe => self.rx.request_keyframe(),
                    Decoded::Nothing => {}
                },
                skipped => {
                    if self.skips.len() < 64 {
                        self.skips.push(skipped);
                    }
                }
            }
        }
        out
    }

    /// Frames the receiver abandoned since the last call ([`ReceiverEvent::Skipped`]).
    pub fn take_skips(&mut self) -> Vec<ReceiverEvent> {
        std::mem::take(&mut self.skips)
    }

    /// Sequence numbers to NACK now.
    pub fn nack_list(&mut self, now_us: u64) -> Vec<u16> {
        self.rx.nack_list(now_us)
    }

    /// Whether to send a PLI now (the caller rate-limits).
    pub fn take_keyframe_request(&mut self) -> bool {
        self.rx.take_keyframe_request()
    }

    pub fn stats(&self) -> ReceiverStats {
        self.rx.stats()
    }

    /// Next time `nack_list`/`poll_frames` have work (µs).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.rx.poll_timeout()
    }
}

/// Audio send stream: Opus encoding, DTX, audio level, RTP.
#[derive(Debug)]
pub struct AudioSender {
    enc: OpusEncoder,
    rtp: OpusRtpSender,
    packets: u32,
    octets: u32,
    last_capture_us: u64,
}

impl AudioSender {
    pub fn new(cfg: OpusConfig, ssrc: u32) -> Result<Self> {
        Ok(AudioSender {
            enc: OpusEncoder::new(cfg)?,
            rtp: OpusRtpSender::new(ssrc, 0, 0),
            packets: 0,
            octets: 0,
            last_capture_us: 0,
        })
    }

    /// Encodes 20 ms; `None` while in DTX (nothing to send).
    pub fn send_frame(&mut self, frame: &AudioFrame) -> Result<Option<Vec<u8>>> {
        let dbov = frame.level_dbov();
        let packet = self.enc.encode(frame)?;
        let level = AudioLevel::from_dbov(dbov, dbov > -50.0);
        self.last_capture_us = frame.capture_us;
        let bytes = self.rtp.packetize(packet.as_deref(), level, frame.capture_us).map(|p| p.to_bytes());
        if let Some(b) = &bytes {
            self.packets = self.packets.wrapping_add(1);
            self.octets = self.octets.wrapping_add(b.len() as u32);
        }
        Ok(bytes)
    }

    /// A sender report for `now_us` (when it is sent, RFC 3550 §6.4.1): the RTP
    /// timestamp is the last frame's, advanced by the time since its capture. The
    /// receiver's lip sync maps audio onto the sender clock with it, and its
    /// clock-offset estimate reads the send time.
    pub fn sender_report(&self, now_us: u64) -> clinicmeet_rtp::rtcp::SenderReport {
        let since = now_us.saturating_sub(self.last_capture_us);
        let ticks = (since * u64::from(clinicmeet_rtp::AUDIO_CLOCK_RATE) / 1_000_000) as u32;
        clinicmeet_rtp::rtcp::sender_report(
            self.rtp.ssrc,
            now_us,
            self.rtp.last_timestamp().wrapping_add(ticks),
            self.packets,
            self.octets,
        )
    }

    pub fn encoder(&mut self) -> &mut OpusEncoder {
        &mut self.enc
    }
}

/// Audio receive stream: jitter buffer and Opus decoding with FEC and concealment.
#[derive(Debug)]
pub struct AudioReceiveStream {
    jb: AudioJitterBuffer,
    dec: OpusDecoder,
    /// Last audio level the sender reported (-dBov), for active-speaker display.
    pub last_level: Option<AudioLevel>,
}

impl AudioReceiveStream {
    pub fn new(cfg: JitterConfig) -> Result<Self> {
        Ok(AudioReceiveStream { jb: AudioJitterBuffer::new(cfg), dec: OpusDecoder::new()?, last_level: None })
    }

    /// A received RTP packet.
    pub fn on_packet(&mut self, bytes: &[u8], now_us: u64) -> Result<()> {
        let v = RtpView::parse(bytes)?;
        let payload = opus_payload(&v)?;
        if let Some(l) = v.extensions().audio_level {
            self.last_level = Some(l);
        }
        self.jb.insert(v.sequence, v.timestamp, payload, now_us);
        Ok(())
    }

    /// The next 20 ms of audio (call every 20 ms).
    pub fn pull(&mut self, now_us: u64) -> Vec<f32> {
        match self.jb.pull(now_us) {
            JitterOutput::Packet(p) => self.dec.decode_or_conceal(&p),
            JitterOutput::FecRecovery(next) => self.dec.decode_fec(&next),
            JitterOutput::Conceal | JitterOutput::Dtx => self.dec.conceal(),
            JitterOutput::Idle => vec![0.0; crate::AUDIO_FRAME_SAMPLES],
        }
    }

    pub fn jitter_buffer(&self) -> &AudioJitterBuffer {
        &self.jb
    }

    pub fn jitter_buffer_mut(&mut self) -> &mut AudioJitterBuffer {
        &mut self.jb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn streams_can_move_to_worker_threads() {
        assert_send::<VideoSender>();
        assert_send::<VideoDecodeStream>();
        assert_send::<VideoReceiveStream>();
        assert_send::<AudioSender>();
        assert_send::<AudioReceiveStream>();
    }
}
