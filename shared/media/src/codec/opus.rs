//! Opus (libopus through the `opus` crate): 48 kHz mono, 20 ms frames, VOIP mode,
//! VBR, in-band FEC and DTX; a decoder with packet-loss concealment and FEC recovery.

use crate::error::{MediaError, Result};
use crate::frame::AudioFrame;
use crate::{AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};

/// Largest Opus packet we produce (RFC 7587 recommends staying well under the MTU).
pub const MAX_OPUS_PACKET: usize = 1_000;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    pub bitrate_bps: u32,
    /// In-band forward error correction (LBRR): a low-rate copy of the previous frame in each packet.
    pub fec: bool,
    /// Discontinuous transmission: silence produces no packets (except rare comfort-noise updates).
    pub dtx: bool,
    /// Expected packet loss in percent (drives how much FEC the encoder spends).
    pub expected_loss_pct: u8,
    /// 0..=10.
    pub complexity: u8,
}

impl Default for OpusConfig {
    fn default() -> Self {
        OpusConfig { bitrate_bps: 32_000, fec: true, dtx: true, expected_loss_pct: 10, complexity: 9 }
    }
}

fn enc_err(e: opus::Error) -> MediaError {
    MediaError::Encoder { codec: "Opus", detail: e.to_string() }
}

fn dec_err(e: opus::Error) -> MediaError {
    MediaError::Decoder { codec: "Opus", detail: e.to_string() }
}

/// Opus encoder for 20 ms mono frames.
pub struct OpusEncoder {
    enc: opus::Encoder,
    cfg: OpusConfig,
    buf: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl OpusEncoder {
    pub fn new(cfg: OpusConfig) -> Result<Self> {
        let mut enc = opus::Encoder::new(AUDIO_SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
            .map_err(enc_err)?;
        enc.set_vbr(true).map_err(enc_err)?;
        enc.set_complexity(i32::from(cfg.complexity.min(10))).map_err(enc_err)?;
        enc.set_signal(opus::Signal::Voice).map_err(enc_err)?;
        let mut this = OpusEncoder { enc, cfg, buf: vec![0; MAX_OPUS_PACKET] };
        this.apply(cfg)?;
        Ok(this)
    }

    fn apply(&mut self, cfg: OpusConfig) -> Result<()> {
        if !(6_000..=510_000).contains(&cfg.bitrate_bps) {
            return Err(MediaError::InvalidArgument(format!("Opus bitrate {}", cfg.bitrate_bps)));
        }
        self.enc.set_bitrate(opus::Bitrate::Bits(cfg.bitrate_bps as i32)).map_err(enc_err)?;
        self.enc.set_inband_fec(cfg.fec).map_err(enc_err)?;
        self.enc.set_dtx(cfg.dtx).map_err(enc_err)?;
        self.enc.set_packet_loss_perc(i32::from(cfg.expected_loss_pct.min(100))).map_err(enc_err)?;
        self.cfg = cfg;
        Ok(())
    }

    pub fn config(&self) -> OpusConfig {
        self.cfg
    }

    /// Changes bitrate while running.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        self.apply(OpusConfig { bitrate_bps: bps, ..self.cfg })
    }

    /// Updates the expected loss (from receiver reports), which sizes the FEC data.
    pub fn set_expected_loss(&mut self, pct: u8) -> Result<()> {
        self.apply(OpusConfig { expected_loss_pct: pct, ..self.cfg })
    }

    /// Encodes one 20 ms frame. `None`: the encoder is in DTX and nothing needs to be sent.
    pub fn encode(&mut self, frame: &AudioFrame) -> Result<Option<Vec<u8>>> {
        if frame.samples.len() != AUDIO_FRAME_SAMPLES {
            return Err(MediaError::InvalidFrame(format!("{} samples, expected 960", frame.samples.len())));
        }
        let n = self.enc.encode_float(&frame.samples, &mut self.buf).map_err(enc_err)?;
        // libopus signals "do not transmit" in DTX with packets of at most 2 bytes.
        if n <= 2 && self.cfg.dtx {
            return Ok(None);
        }
        Ok(Some(self.buf[..n].to_vec()))
    }
}

/// Opus decoder producing 20 ms mono frames.
pub struct OpusDecoder {
    dec: opus::Decoder,
    out: Vec<f32>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    pub fn new() -> Result<Self> {
        let dec = opus::Decoder::new(AUDIO_SAMPLE_RATE, opus::Channels::Mono).map_err(dec_err)?;
        // Room for the longest Opus packet (120 ms).
        Ok(OpusDecoder { dec, out: vec![0.0; AUDIO_FRAME_SAMPLES * 6] })
    }

    /// Decodes a received packet. Packets longer than 20 ms are cut to 20 ms;
    /// shorter ones are padded with silence. Corrupt packets give an error
    /// (the caller should then [`conceal`](Self::conceal)).
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>> {
        if packet.is_empty() {
            return Err(MediaError::Malformed("empty Opus packet"));
        }
        let n = self.dec.decode_float(packet, &mut self.out, false).map_err(dec_err)?;
        Ok(self.take(n))
    }

    /// Packet-loss concealment for one missing 20 ms frame.
    pub fn conceal(&mut self) -> Vec<f32> {
        let n = self.dec.decode_float(&[], &mut self.out[..AUDIO_FRAME_SAMPLES], false).unwrap_or(0);
        self.take(n)
    }

    /// Recovers a missing frame from the FEC data carried in the *next* packet.
    /// Falls back to concealment when the packet has no usable FEC data.
    pub fn decode_fec(&mut self, next_packet: &[u8]) -> Vec<f32> {
        if next_packet.is_empty() {
            return self.conceal();
        }
        match self.dec.decode_float(next_packet, &mut self.out[..AUDIO_FRAME_SAMPLES], true) {
            Ok(n) => self.take(n),
            Err(_) => self.conceal(),
        }
    }

    /// Decodes a packet, concealing on a decode error. Never fails.
    pub fn decode_or_conceal(&mut self, packet: &[u8]) -> Vec<f32> {
        match self.decode(packet) {
            Ok(s) => s,
            Err(_) => self.conceal(),
        }
    }

    fn take(&mut self, n: usize) -> Vec<f32> {
        let mut v = self.out[..n.min(AUDIO_FRAME_SAMPLES)].to_vec();
        v.resize(AUDIO_FRAME_SAMPLES, 0.0);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::synthetic::{SyntheticMicrophone, SyntheticSound};
    use crate::capture::{AudioSource, Pacing};

    #[test]
    fn dtx_sends_nothing_during_silence() {
        let mut mic = SyntheticMicrophone::new(
            SyntheticSound::SpeechLike { seed: 3, amplitude: 0.4 },
            Pacing::Virtual { start_us: 0 },
        );
        let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
        let (mut sent_silent, mut silent, mut sent_loud, mut loud) = (0, 0, 0, 0);
        for _ in 0..500 {
            let f = mic.read_frame().unwrap();
            let out = enc.encode(&f).unwrap();
            if f.level_dbov() < -100.0 {
                silent += 1;
                sent_silent += usize::from(out.is_some());
            } else {
                loud += 1;
                sent_loud += usize::from(out.is_some());
            }
        }
        assert!(silent > 50 && loud > 50);
        assert_eq!(sent_loud, loud, "every speech frame is sent");
        // DTX starts after ~200 ms of hangover, so short pauses still send some frames.
        assert!(sent_silent * 2 < silent, "DTX: {sent_silent} of {silent} silent frames sent");
        // A long silence sends only the occasional comfort-noise update.
        let mut quiet = SyntheticMicrophone::new(SyntheticSound::Silence, Pacing::Virtual { start_us: 0 });
        let sent = (0..100).filter(|_| enc.encode(&quiet.read_frame().unwrap()).unwrap().is_some()).count();
        assert!(sent <= 20, "{sent} of 100 silent frames sent");
    }

    #[test]
    fn garbage_packets_give_errors_not_panics() {
        let mut dec = OpusDecoder::new().unwrap();
        let _ = dec.decode(&[0xff; 3]);
        assert!(dec.decode(&[]).is_err());
        assert_eq!(dec.decode_or_conceal(&[0x0b, 0xff, 0xff, 0xff]).len(), 960);
        assert_eq!(dec.decode_fec(&[0xfc]).len(), 960);
    }
}
