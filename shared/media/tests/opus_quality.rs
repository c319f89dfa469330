//! Opus through encode → (loss) → decode: tone frequency and FEC versus concealment.

use clinicmeet_media::capture::synthetic::{SyntheticMicrophone, SyntheticSound};
use clinicmeet_media::capture::{AudioSource, Pacing};
use clinicmeet_media::codec::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use rand::{Rng, SeedableRng};

mod common;
use common::dominant_hz;

fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    let (mut sig, mut noise) = (0f64, 0f64);
    for (r, t) in reference.iter().zip(test) {
        sig += f64::from(*r) * f64::from(*r);
        noise += f64::from(r - t) * f64::from(r - t);
    }
    10.0 * (sig / noise.max(1e-20)).log10()
}

#[test]
fn tone_440_comes_back_at_440() {
    let mut mic = SyntheticMicrophone::tone(440.0);
    let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
    let mut dec = OpusDecoder::new().unwrap();
    let mut out = Vec::new();
    for _ in 0..100 {
        let pkt = enc.encode(&mic.read_frame().unwrap()).unwrap().expect("a tone is never DTX");
        out.extend(dec.decode(&pkt).unwrap());
    }
    // Skip the codec's start-up, then analyse 65,536 samples (1.37 s, 0.73 Hz bins).
    let f = dominant_hz(&out[4_800..4_800 + 65_536], 48_000.0);
    assert!((f - 440.0).abs() <= 2.0, "measured {f} Hz");
    // And a different tone is not mistaken for 440.
    let mut mic = SyntheticMicrophone::tone(523.25);
    let mut out = Vec::new();
    for _ in 0..100 {
        let pkt = enc.encode(&mic.read_frame().unwrap()).unwrap().unwrap();
        out.extend(dec.decode(&pkt).unwrap());
    }
    let f = dominant_hz(&out[4_800..4_800 + 65_536], 48_000.0);
    assert!((f - 523.25).abs() <= 2.0, "measured {f} Hz");
}

#[test]
fn fec_beats_concealment_by_3_db_at_10_percent_loss() {
    let cfg = OpusConfig { dtx: false, expected_loss_pct: 10, ..OpusConfig::default() };
    let mut enc = OpusEncoder::new(cfg).unwrap();
    let mut mic = SyntheticMicrophone::new(
        SyntheticSound::SpeechLike { seed: 11, amplitude: 0.5 },
        Pacing::Virtual { start_us: 0 },
    );
    let packets: Vec<Vec<u8>> =
        (0..1_000).map(|_| enc.encode(&mic.read_frame().unwrap()).unwrap().unwrap()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let lost: Vec<bool> = (0..packets.len()).map(|i| i > 5 && rng.random_bool(0.10)).collect();
    let n_lost = lost.iter().filter(|&&l| l).count();
    assert!((60..=140).contains(&n_lost), "{n_lost}");

    let (mut reference, mut with_fec, mut plc_only) = (Vec::new(), Vec::new(), Vec::new());
    let (mut d_ref, mut d_fec, mut d_plc) =
        (OpusDecoder::new().unwrap(), OpusDecoder::new().unwrap(), OpusDecoder::new().unwrap());
    let mut fec_recovered = 0;
    for i in 0..packets.len() {
        reference.extend(d_ref.decode(&packets[i]).unwrap());
        if lost[i] {
            plc_only.extend(d_plc.conceal());
            match packets.get(i + 1).filter(|_| !lost.get(i + 1).copied().unwrap_or(true)) {
                Some(next) => {
                    fec_recovered += 1;
                    with_fec.extend(d_fec.decode_fec(next));
                }
                None => with_fec.extend(d_fec.conceal()),
            }
        } else {
            plc_only.extend(d_plc.decode(&packets[i]).unwrap());
            with_fec.extend(d_fec.decode(&packets[i]).unwrap());
        }
    }
    let (snr_fec, snr_plc) = (snr_db(&reference, &with_fec), snr_db(&reference, &plc_only));
    println!("lost {n_lost}, FEC-recovered {fec_recovered}, SNR with FEC {snr_fec:.1} dB, PLC only {snr_plc:.1} dB");
    assert!(fec_recovered > 0);
    assert!(snr_fec >= snr_plc + 3.0, "FEC {snr_fec:.1} dB vs PLC {snr_plc:.1} dB");
}
