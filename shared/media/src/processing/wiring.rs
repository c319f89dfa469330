//! Puts one [`AudioProcessor`] between a microphone source and a speaker sink.

use std::sync::{Arc, Mutex};

use super::{AudioProcessor, ProcessingStats};
use crate::capture::{AudioSink, AudioSource};
use crate::error::{MediaError, Result};
use crate::frame::AudioFrame;

/// One processor shared by the capture thread and the playback thread.
#[derive(Debug, Clone)]
pub struct SharedProcessor(Arc<Mutex<AudioProcessor>>);

impl SharedProcessor {
    pub fn new(p: AudioProcessor) -> Self {
        SharedProcessor(Arc::new(Mutex::new(p)))
    }

    /// Runs `f` with the processor locked.
    pub fn with<T>(&self, f: impl FnOnce(&mut AudioProcessor) -> Result<T>) -> Result<T> {
        let mut guard =
            self.0.lock().map_err(|_| MediaError::Processing("audio processor lock poisoned".into()))?;
        f(&mut guard)
    }

    pub fn stats(&self) -> ProcessingStats {
        self.with(|p| Ok(p.stats())).unwrap_or_default()
    }
}

/// A microphone whose frames come out echo-cancelled, denoised and levelled.
#[derive(Debug)]
pub struct ProcessedSource<S> {
    inner: S,
    processor: SharedProcessor,
}

impl<S: AudioSource> ProcessedSource<S> {
    pub fn new(inner: S, processor: SharedProcessor) -> Self {
        ProcessedSource { inner, processor }
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AudioSource> AudioSource for ProcessedSource<S> {
    fn read_frame(&mut self) -> Result<AudioFrame> {
        let mut frame = self.inner.read_frame()?;
        self.processor.with(|p| p.capture_frame(&mut frame))?;
        Ok(frame)
    }
}

/// A speaker that tells the processor what it plays (the echo reference).
#[derive(Debug)]
pub struct EchoReferenceSink<K> {
    inner: K,
    processor: SharedProcessor,
}

impl<K: AudioSink> EchoReferenceSink<K> {
    pub fn new(inner: K, processor: SharedProcessor) -> Self {
        EchoReferenceSink { inner, processor }
    }

    pub fn into_inner(self) -> K {
        self.inner
    }
}

impl<K: AudioSink> AudioSink for EchoReferenceSink<K> {
    fn play(&mut self, frame: &AudioFrame) -> Result<()> {
        self.processor.with(|p| p.render_frame(frame))?;
        self.inner.play(frame)
    }
}
