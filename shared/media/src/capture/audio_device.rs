//! Real microphones and speakers through `cpal`, at the engine's 48 kHz mono.
//!
//! * Host: on Linux cpal's native PulseAudio host when a PulseAudio (or
//!   pipewire-pulse) server is reachable, else ALSA; CoreAudio / WASAPI elsewhere.
//! * Format: the device is opened mono at 48 kHz when it supports that (PulseAudio
//!   always does); otherwise at its own rate and channel count, and the audio is
//!   down-mixed and resampled with `rubato` (FFT resampler) to 48 kHz mono. Playback
//!   does the reverse.
//! * The cpal callbacks only move samples in or out of a ring buffer; resampling runs
//!   in [`Microphone::read_frame`] / [`Speaker::play`], on the caller's thread.
//! * No device: [`MediaError::DeviceNotFound`] naming the microphone or speaker, so the
//!   app can go video-only or chat-only. ALSA's `null` device (which exists on machines
//!   without a sound card) is not counted as a device.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::{AudioSink, AudioSource, DeviceInfo, DeviceKind};
use crate::error::{MediaError, Result};
use crate::frame::AudioFrame;
use crate::{AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};

/// Options for opening a device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioDeviceOptions {
    /// Run the device at this rate instead of 48 kHz (the engine still sees 48 kHz).
    /// For devices that misbehave at 48 kHz, and to exercise the resampler.
    pub device_rate: Option<u32>,
}

/// The audio host in use ("PulseAudio", "ALSA", "CoreAudio", "WASAPI", ...).
pub fn audio_host_name() -> &'static str {
    cpal::default_host().id().name()
}

/// Microphones present (empty when there are none).
pub fn list_microphones() -> Result<Vec<DeviceInfo>> {
    list(DeviceKind::Microphone)
}

/// Speakers present (empty when there are none).
pub fn list_speakers() -> Result<Vec<DeviceInfo>> {
    list(DeviceKind::Speaker)
}

fn list(kind: DeviceKind) -> Result<Vec<DeviceInfo>> {
    let host = cpal::default_host();
    Ok(devices(&host, kind)?.iter().map(|d| device_info(d, kind)).collect())
}

fn devices(host: &cpal::Host, kind: DeviceKind) -> Result<Vec<cpal::Device>> {
    let list = match kind {
        DeviceKind::Speaker => host.output_devices(),
        _ => host.input_devices(),
    }
    .map_err(|e| MediaError::Device {
        kind,
        detail: format!("cannot enumerate ({}): {e}", host.id().name()),
    })?;
    Ok(list.filter(|d| is_usable(d, kind)).collect())
}

/// Whether a listed device can actually be used. ALSA lists every PCM its
/// configuration defines (`null`, rate-converter and up-mix plugins, `pulse`, `jack`,
/// ...) even on a machine without a sound card or sound server; those fail when asked
/// for their configurations, so a device counts only if it reports at least one.
/// `null` accepts and produces silence and is never a device a user means.
fn is_usable(d: &cpal::Device, kind: DeviceKind) -> bool {
    let id = d.id().map(|i| i.id().to_string()).unwrap_or_default();
    if id == "null" || id.starts_with("null:") {
        return false;
    }
    // `supports_input/output` only look at the listed direction on ALSA; asking for the
    // configurations opens the PCM, which is what fails for a plugin with nothing behind it.
    match kind {
        DeviceKind::Speaker => d.supported_output_configs().is_ok_and(|mut c| c.next().is_some()),
        _ => d.supported_input_configs().is_ok_and(|mut c| c.next().is_some()),
    }
}

fn device_info(d: &cpal::Device, kind: DeviceKind) -> DeviceInfo {
    DeviceInfo {
        id: d.id().map(|i| i.to_string()).unwrap_or_default(),
        name: d.description().map(|x| x.name().to_string()).unwrap_or_else(|_| d.to_string()),
        kind,
    }
}

fn find_device(kind: DeviceKind, id: Option<&str>) -> Result<(cpal::Device, DeviceInfo)> {
    let host = cpal::default_host();
    let host_name = host.id().name();
    let present = devices(&host, kind)?;
    let device = match id {
        None => {
            let default = match kind {
                DeviceKind::Speaker => host.default_output_device(),
                _ => host.default_input_device(),
            };
            default.filter(|d| is_usable(d, kind)).or_else(|| present.first().cloned()).ok_or_else(|| {
                MediaError::DeviceNotFound {
                    kind,
                    detail: format!(
                        "the {host_name} audio system has no {kind} (no sound card or sound server)"
                    ),
                }
            })?
        }
        Some(id) => present.iter().find(|d| device_info(d, kind).id == id).cloned().ok_or_else(|| {
            MediaError::DeviceNotFound {
                kind,
                detail: format!("no {kind} with id {id:?} on {host_name} ({} present)", present.len()),
            }
        })?,
    };
    let info = device_info(&device, kind);
    Ok((device, info))
}

/// Picks channels, rate and sample format: mono 48 kHz f32 when supported, else the
/// closest the device offers.
fn choose_config(
    device: &cpal::Device,
    kind: DeviceKind,
    opts: &AudioDeviceOptions,
) -> Result<(cpal::StreamConfig, SampleFormat)> {
    let err = |what: &str, e: cpal::Error| MediaError::Device { kind, detail: format!("{what}: {e}") };
    let (ranges, default) = match kind {
        DeviceKind::Speaker => (
            device
                .supported_output_configs()
                .map_err(|e| err("no output configurations", e))?
                .collect::<Vec<_>>(),
            device.default_output_config().map_err(|e| err("no default output configuration", e))?,
        ),
        _ => (
            device
                .supported_input_configs()
                .map_err(|e| err("no input configurations", e))?
                .collect::<Vec<_>>(),
            device.default_input_config().map_err(|e| err("no default input configuration", e))?,
        ),
    };
    let rate = opts.device_rate.unwrap_or(AUDIO_SAMPLE_RATE);
    let usable =
        [SampleFormat::F32, SampleFormat::I16, SampleFormat::I32, SampleFormat::U8, SampleFormat::F64];
    let score = |r: &cpal::SupportedStreamConfigRange| {
        let fmt = usable.iter().position(|f| *f == r.sample_format()).unwrap_or(99);
        (u32::from(r.channels() != 1), fmt, r.channels())
    };
    let best = ranges
        .iter()
        .filter(|r| r.contains_rate(rate) && usable.contains(&r.sample_format()))
        .min_by_key(|r| score(r));
    if let Some(r) = best {
        let cfg = (*r).with_sample_rate(rate);
        let mut sc = cfg.config();
        sc.buffer_size = buffer_size_10ms(cfg.buffer_size(), rate);
        return Ok((sc, cfg.sample_format()));
    }
    if usable.contains(&default.sample_format()) {
        return Ok((default.config(), default.sample_format()));
    }
    Err(MediaError::UnsupportedFormat(format!(
        "{kind} supports no usable sample format or rate (default {:?})",
        default.sample_format()
    )))
}

/// Asks for 10 ms device buffers when the device says it can do that. With the
/// default, PulseAudio picks buffers of up to 2 s: playback then drains our queue in
/// large gulps (long silences between) and capture arrives in bursts.
fn buffer_size_10ms(supported: &cpal::SupportedBufferSize, rate: u32) -> cpal::BufferSize {
    let want = (rate / 100).max(1);
    match supported {
        cpal::SupportedBufferSize::Range { min, max } if min <= max => {
            cpal::BufferSize::Fixed(want.clamp(*min, *max))
        }
        _ => cpal::BufferSize::Default,
    }
}

/// Samples shared between a cpal callback and the engine side.
#[derive(Debug, Default)]
struct Ring {
    samples: VecDeque<f32>,
    /// Wall-clock time (µs) at which the newest sample in `samples` was captured.
    newest_us: u64,
    callbacks: u64,
    overruns: u64,
    underruns: u64,
    error: Option<String>,
}

type Shared = Arc<(Mutex<Ring>, Condvar)>;

/// Ends a device callback: counts it and wakes the engine thread waiting on the ring.
fn callback_done(mut ring: std::sync::MutexGuard<'_, Ring>, shared: &Shared) {
    ring.callbacks += 1;
    drop(ring);
    shared.1.notify_all();
}

/// A stream error callback that hands the error to the engine thread.
fn stream_error_to(shared: Shared) -> impl FnMut(cpal::Error) + Send + 'static {
    move |e| {
        lock(&shared).error = Some(e.to_string());
        shared.1.notify_all();
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Ring> {
    shared.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a microphone and a speaker share: the running stream, the ring its
/// callback fills or drains, the device, its rate and the resampler between
/// that rate and 48 kHz (none when they are equal).
struct DeviceStream {
    _stream: cpal::Stream,
    shared: Shared,
    info: DeviceInfo,
    device_rate: u32,
    resampler: Option<Fft<f32>>,
}

impl std::fmt::Debug for DeviceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceStream")
            .field("info", &self.info)
            .field("device_rate", &self.device_rate)
            .finish_non_exhaustive()
    }
}

/// A microphone delivering 20 ms frames at 48 kHz mono.
pub struct Microphone {
    dev: DeviceStream,
    inbuf: Vec<f32>,
    first: bool,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone").field("device", &self.dev).finish_non_exhaustive()
    }
}

/// `build::<T>(args)` for the sample type `T` of a cpal sample format, or `None`
/// for a format we cannot handle.
macro_rules! by_sample_format {
    ($format:expr, $build:ident($($arg:expr),*)) => {
        match $format {
            SampleFormat::F32 => Some($build::<f32>($($arg),*)),
            SampleFormat::I16 => Some($build::<i16>($($arg),*)),
            SampleFormat::I32 => Some($build::<i32>($($arg),*)),
            SampleFormat::U8 => Some($build::<u8>($($arg),*)),
            SampleFormat::F64 => Some($build::<f64>($($arg),*)),
            _ => None,
        }
    };
}

/// Longest the capture ring may grow (1 s); older audio is dropped.
const RING_MAX_SECONDS: usize = 1;
/// Wait for the first capture callback: some servers take 1–2 s to start.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(6);
const FRAME_TIMEOUT: Duration = Duration::from_secs(2);

impl Microphone {
    /// Opens the microphone `id` (from [`list_microphones`]) or the default one.
    pub fn open(id: Option<&str>) -> Result<Self> {
        Self::open_with(id, &AudioDeviceOptions::default())
    }

    pub fn open_with(id: Option<&str>, opts: &AudioDeviceOptions) -> Result<Self> {
        let dev = start_stream(DeviceKind::Microphone, id, opts, |device, config, format, shared| {
            let channels = usize::from(config.channels.max(1));
            let cap = config.sample_rate as usize * RING_MAX_SECONDS;
            by_sample_format!(format, build_input(device, config, channels, cap, shared))
        })?;
        Ok(Microphone { dev, inbuf: Vec::new(), first: true })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.dev.info
    }

    /// The rate the device runs at (audio is resampled to 48 kHz when it differs).
    pub fn device_rate(&self) -> u32 {
        self.dev.device_rate
    }

    /// Samples dropped because the engine read too slowly.
    pub fn overruns(&self) -> u64 {
        lock(&self.dev.shared).overruns
    }
}

/// Opens device `id` of `kind` (or the default one), builds its stream with
/// `build` for the chosen sample format (`None`: a format we cannot handle),
/// starts it, and makes the resampler from (microphone) or to (speaker) 48 kHz.
fn start_stream(
    kind: DeviceKind,
    id: Option<&str>,
    opts: &AudioDeviceOptions,
    build: impl FnOnce(
        &cpal::Device,
        cpal::StreamConfig,
        SampleFormat,
        &Shared,
    ) -> Option<std::result::Result<cpal::Stream, cpal::Error>>,
) -> Result<DeviceStream> {
    let (device, info) = find_device(kind, id)?;
    let (config, format) = choose_config(&device, kind, opts)?;
    let device_rate = config.sample_rate;
    let shared: Shared = Arc::new((Mutex::new(Ring::default()), Condvar::new()));
    let stream = build(&device, config, format, &shared)
        .ok_or_else(|| MediaError::UnsupportedFormat(format!("{kind} sample format {format:?}")))?
        .map_err(|e| MediaError::Device { kind, detail: format!("cannot open {}: {e}", info.name) })?;
    stream
        .play()
        .map_err(|e| MediaError::Device { kind, detail: format!("cannot start {}: {e}", info.name) })?;
    let resampler = match kind {
        _ if device_rate == AUDIO_SAMPLE_RATE => None,
        DeviceKind::Microphone => Some(new_resampler(device_rate, AUDIO_SAMPLE_RATE, FixedSync::Output)?),
        _ => Some(new_resampler(AUDIO_SAMPLE_RATE, device_rate, FixedSync::Input)?),
    };
    Ok(DeviceStream { _stream: stream, shared, info, device_rate, resampler })
}

/// Waits on the ring until `ready`, a stream error or `timeout` (then the
/// error says `stalled(ring)`), and returns it locked.
fn wait_ring<'a>(
    shared: &'a Shared,
    kind: DeviceKind,
    name: &str,
    timeout: Duration,
    ready: impl Fn(&Ring) -> bool,
    stalled: impl Fn(&Ring) -> String,
) -> Result<std::sync::MutexGuard<'a, Ring>> {
    let deadline = Instant::now() + timeout;
    let mut ring = lock(shared);
    while !ready(&ring) {
        if let Some(e) = ring.error.take() {
            return Err(MediaError::Device { kind, detail: format!("{name}: {e}") });
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(MediaError::Device { kind, detail: stalled(&ring) });
        }
        ring = shared.1.wait_timeout(ring, deadline - now).map(|r| r.0).unwrap_or_else(|p| p.into_inner().0);
    }
    Ok(ring)
}

/// Resamples `input` into `out` (mono); returns the samples written.
fn resample(r: &mut Fft<f32>, input: &[f32], out: &mut [f32]) -> Result<usize> {
    let (n_in, n_out) = (input.len(), out.len());
    let input = InterleavedSlice::new(input, 1, n_in)
        .map_err(|e| MediaError::Processing(format!("resampler input: {e}")))?;
    let mut output = InterleavedSlice::new_mut(out, 1, n_out)
        .map_err(|e| MediaError::Processing(format!("resampler output: {e}")))?;
    let (_, written) = r
        .process_into_buffer(&input, &mut output, None)
        .map_err(|e| MediaError::Processing(format!("resampling: {e}")))?;
    Ok(written)
}

fn new_resampler(from: u32, to: u32, fixed: FixedSync) -> Result<Fft<f32>> {
    Fft::<f32>::new(from as usize, to as usize, AUDIO_FRAME_SAMPLES, 1, fixed)
        .map_err(|e| MediaError::UnsupportedFormat(format!("cannot resample {from} Hz to {to} Hz: {e}")))
}

fn build_input<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    channels: usize,
    cap: usize,
    shared: &Shared,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let data_shared = shared.clone();
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], info: &cpal::InputCallbackInfo| {
            let ts = info.timestamp();
            let latency_us =
                ts.callback.checked_duration_since(ts.capture).map_or(0, |d| d.as_micros() as u64);
            let mut ring = lock(&data_shared);
            for frame in data.chunks(channels) {
                let sum: f32 = frame.iter().map(|s| f32::from_sample_(*s)).sum();
                ring.samples.push_back(sum / frame.len().max(1) as f32);
            }
            let excess = ring.samples.len().saturating_sub(cap);
            if excess > 0 {
                ring.samples.drain(..excess);
                ring.overruns += excess as u64;
            }
            ring.newest_us = crate::clock::now_us().saturating_sub(latency_us);
            callback_done(ring, &data_shared);
        },
        stream_error_to(shared.clone()),
        None,
    )
}

impl AudioSource for Microphone {
    fn read_frame(&mut self) -> Result<AudioFrame> {
        let need = self.dev.resampler.as_ref().map_or(AUDIO_FRAME_SAMPLES, |r| r.input_frames_next());
        let timeout = if self.first { FIRST_FRAME_TIMEOUT } else { FRAME_TIMEOUT };
        let name = &self.dev.info.name;
        let mut ring = wait_ring(
            &self.dev.shared,
            DeviceKind::Microphone,
            name,
            timeout,
            |ring| ring.samples.len() >= need,
            |ring| {
                format!(
                    "{name} delivered no audio for {} ms ({} callbacks so far)",
                    timeout.as_millis(),
                    ring.callbacks
                )
            },
        )?;
        // Capture time of the first sample we take: newest minus what is queued.
        let queued_us = ring.samples.len() as u64 * 1_000_000 / u64::from(self.dev.device_rate.max(1));
        let capture_us = ring.newest_us.saturating_sub(queued_us);
        self.inbuf.clear();
        self.inbuf.extend(ring.samples.drain(..need));
        drop(ring);
        self.first = false;
        let samples = match self.dev.resampler.as_mut() {
            None => std::mem::take(&mut self.inbuf),
            Some(r) => {
                let mut out = vec![0.0f32; AUDIO_FRAME_SAMPLES];
                resample(r, &self.inbuf, &mut out)?;
                out
            }
        };
        AudioFrame::new(samples, capture_us)
    }
}

/// A speaker playing 20 ms frames at 48 kHz mono.
#[derive(Debug)]
pub struct Speaker {
    dev: DeviceStream,
    max_queued: usize,
}

/// Audio queued ahead of the device before [`Speaker::play`] blocks.
const PLAYBACK_QUEUE_MS: usize = 120;

impl Speaker {
    /// Opens the speaker `id` (from [`list_speakers`]) or the default one, at
    /// 48 kHz mono when it supports that.
    pub fn open(id: Option<&str>) -> Result<Self> {
        let opts = AudioDeviceOptions::default();
        let dev = start_stream(DeviceKind::Speaker, id, &opts, |device, config, format, shared| {
            let channels = usize::from(config.channels.max(1));
            by_sample_format!(format, build_output(device, config, channels, shared))
        })?;
        let max_queued = dev.device_rate as usize * PLAYBACK_QUEUE_MS / 1000;
        Ok(Speaker { dev, max_queued })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.dev.info
    }

    pub fn device_rate(&self) -> u32 {
        self.dev.device_rate
    }

    /// Device callbacks that found nothing to play (silence was played instead).
    pub fn underruns(&self) -> u64 {
        lock(&self.dev.shared).underruns
    }
}

fn build_output<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    channels: usize,
    shared: &Shared,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32> + Send + 'static,
{
    let data_shared = shared.clone();
    device.build_output_stream::<T, _, _>(
        config,
        move |data: &mut [T], _info: &cpal::OutputCallbackInfo| {
            let mut ring = lock(&data_shared);
            let mut short = false;
            for frame in data.chunks_mut(channels) {
                let s = ring.samples.pop_front().unwrap_or_else(|| {
                    short = true;
                    0.0
                });
                frame.fill(T::from_sample_(s));
            }
            if short {
                ring.underruns += 1;
            }
            callback_done(ring, &data_shared);
        },
        stream_error_to(shared.clone()),
        None,
    )
}

impl AudioSink for Speaker {
    fn play(&mut self, frame: &AudioFrame) -> Result<()> {
        let samples: Vec<f32> = match self.dev.resampler.as_mut() {
            None => frame.samples.clone(),
            Some(r) => {
                let n_in = frame.samples.len().min(r.input_frames_next());
                let mut out = vec![0.0f32; r.output_frames_max()];
                let written = resample(r, &frame.samples[..n_in], &mut out)?;
                out.truncate(written);
                out
            }
        };
        // Some servers start calling back only 1–2 s after the stream starts.
        let timeout = if lock(&self.dev.shared).callbacks == 0 { FIRST_FRAME_TIMEOUT } else { FRAME_TIMEOUT };
        let (name, max_queued) = (&self.dev.info.name, self.max_queued);
        let mut ring = wait_ring(
            &self.dev.shared,
            DeviceKind::Speaker,
            name,
            timeout,
            |ring| ring.samples.len() <= max_queued,
            |_| format!("{name} stopped consuming audio"),
        )?;
        ring.samples.extend(samples);
        Ok(())
    }
}
