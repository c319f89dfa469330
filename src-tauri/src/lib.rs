//! The ClinicMeet desktop app: a thin Tauri 2 shell over `clinicmeet-client`.
//!
//! * [`engine`]: owns the client session and forwards its events to the UI (no Tauri types).
//! * [`contract`]: the events the UI receives, as Rust types; generates `ui/src/engine/generated.ts`.
//! * [`commands`]: one Tauri command per UI `Engine` method.
//! * [`launch`]: `clinicmeet://join/CODE?relay=…&pin=…` invite links and `CLINICMEET_RELAY`/`CLINICMEET_PIN`.
//! * [`pin`]: relay key pins as typed (base64 or hex).
//! * [`frames`]: video to the web view: scaling to the tile, latest-frame-wins slots, the binary format.
//! * [`frame_socket`]: the loopback WebSocket (per-run token, credit from the page) the frames travel on.
//! * [`engine::media`]: the client media engine in the app (sources, remote video pump, speaker, preview).
//! * [`error`]: the error the UI receives.

pub mod commands;
pub mod contract;
pub mod engine;
pub mod error;
pub mod frame_socket;
pub mod frames;
pub mod launch;
pub mod pin;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tauri::Manager;
use tauri_plugin_deep_link::DeepLinkExt;

use commands::AppState;
use engine::Engine;
use launch::Invite;

/// What the app starts with: the invite link among the arguments (Linux and
/// Windows pass it as an argument), else the relay from the environment.
fn initial_launch(args: &[String]) -> Invite {
    let env_relay =
        launch::relay_from_env(std::env::var("CLINICMEET_RELAY").ok(), std::env::var("CLINICMEET_PIN").ok());
    let link =
        args.iter().find(|a| a.starts_with("clinicmeet:")).and_then(|a| launch::parse_deep_link(a).ok());
    match link {
        Some(inv) => Invite { code: inv.code, relay: inv.relay.or(env_relay) },
        None => Invite { code: None, relay: env_relay },
    }
}

/// An invite link arrived while running (second instance or the OS): tell the UI.
fn on_invite(app: &tauri::AppHandle, link: &str) {
    let Ok(inv) = launch::parse_deep_link(link) else {
        tracing::warn!("ignored an unreadable invite link");
        return;
    };
    if let Some(state) = app.try_state::<AppState>() {
        *state.launch.lock().unwrap_or_else(|e| e.into_inner()) = inv.clone();
        if let Some(ch) = state.events.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = ch.send(contract::EngineEvent::App(contract::AppEvent::Invite(inv)));
        }
    }
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.set_focus();
    }
}

/// Adds `origin` to the CSP's `connect-src` (the only place the page may connect to
/// besides Tauri's IPC).
fn allow_connect(csp: &mut Option<tauri::utils::config::Csp>, origin: &str) {
    use tauri::utils::config::{Csp, CspDirectiveSources};
    let Some(policy) = csp.take() else { return };
    let mut map: std::collections::HashMap<String, CspDirectiveSources> = match policy {
        Csp::DirectiveMap(m) => m,
        // The config spells it as a map; a policy string is parsed into one.
        Csp::Policy(p) => p
            .split(';')
            .filter_map(|d| {
                let mut words = d.split_whitespace();
                let name = words.next()?.to_string();
                Some((name, CspDirectiveSources::List(words.map(str::to_string).collect())))
            })
            .collect(),
    };
    map.entry("connect-src".into()).or_insert_with(|| CspDirectiveSources::List(Vec::new())).push(origin);
    *csp = Some(Csp::DirectiveMap(map));
}

/// Runs the app (the binary's `main`).
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,clinicmeet_client=info,clinicmeet_app=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let args: Vec<String> = std::env::args().collect();
    // The frame socket is bound first so the page's CSP can name exactly its origin.
    let (frame_socket, frame_listener) = match frame_socket::FrameSocket::bind() {
        Ok((s, l)) => (Arc::new(s), l),
        Err(e) => {
            eprintln!("clinicmeet-app: cannot listen on 127.0.0.1 for video frames: {e}");
            std::process::exit(1);
        }
    };
    let mut context = tauri::generate_context!();
    allow_connect(&mut context.config_mut().app.security.csp, &frame_socket.origin());
    let mut builder = tauri::Builder::default();
    // One window per user: a second start (e.g. an invite link clicked while the app
    // runs) hands its link to the first. Tests run instances side by side.
    if std::env::var_os("CLINICMEET_MULTI_INSTANCE").is_none() {
        builder = builder.plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            if let Some(link) = argv.iter().find(|a| a.starts_with("clinicmeet:")) {
                on_invite(app, link);
            } else if let Some(w) = app.get_webview_window("main") {
                let _ = w.set_focus();
            }
        }));
    }
    let result = builder
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_window_state::Builder::default().build())
        // OS notifications for the UI's signals (`ui/src/signals/os.ts`): the page sends
        // only fixed sentences with the meeting title, never chat text or names.
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| {
            let data_dir = match std::env::var_os("CLINICMEET_DATA_DIR") {
                Some(d) => PathBuf::from(d),
                None => app.path().app_data_dir()?,
            };
            tracing::info!(data_dir = %data_dir.display(), "starting");
            let events: Arc<Mutex<Option<tauri::ipc::Channel<contract::EngineEvent>>>> =
                Arc::new(Mutex::new(None));
            let sink_events = events.clone();
            let sink: engine::EventSink = Arc::new(move |v| {
                if let Some(ch) = sink_events.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    let _ = ch.send(v);
                }
            });
            let engine = Arc::new(Engine::new(data_dir, sink));
            tauri::async_runtime::spawn(frame_socket.clone().serve(frame_listener, engine.frames()));
            app.manage(AppState { engine, events, launch: Mutex::new(initial_launch(&args)), frame_socket });
            // macOS delivers links as events (also the first one); Linux/Windows as arguments.
            let handle = app.handle().clone();
            app.deep_link().on_open_url(move |event| {
                for url in event.urls() {
                    on_invite(&handle, url.as_str());
                }
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::subscribe,
            commands::frame_socket,
            commands::set_video_size,
            commands::launch_info,
            commands::saved_relay,
            commands::connect,
            commands::disconnect,
            commands::enroll,
            commands::create_meeting,
            commands::list_meetings,
            commands::join,
            commands::leave,
            commands::admit,
            commands::deny,
            commands::mute,
            commands::allow_unmute,
            commands::remove,
            commands::promote,
            commands::demote,
            commands::set_locked,
            commands::set_self_unmute,
            commands::rekey_meeting,
            commands::end_meeting,
            commands::start_consultation,
            commands::end_consultation,
            commands::save_consultation_notes,
            commands::consultations,
            commands::update_media,
            commands::list_devices,
            commands::select_device,
            commands::start_preview,
            commands::stop_preview,
            commands::send_chat,
            commands::retry_chat,
            commands::typing,
            commands::chat_history,
            commands::consultation_record,
            commands::amend_consultation,
            commands::local_meetings,
            commands::past_meetings,
            commands::clinic_meetings,
            commands::join_as_staff,
            commands::cancel_meeting,
            commands::save_invitation,
        ])
        .run(context);
    if let Err(e) = result {
        eprintln!("clinicmeet-app: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_argument_wins_over_the_environment() {
        let pin = "sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let args =
            vec!["clinicmeet-app".to_string(), format!("clinicmeet://join/ABCD-EFGH?relay=h:9&pin={pin}")];
        let inv = initial_launch(&args);
        assert_eq!(inv.code.as_deref(), Some("ABCD-EFGH"));
        assert_eq!(inv.relay.map(|r| r.address), Some("h:9".to_string()));
        assert_eq!(initial_launch(&["x".to_string(), "clinicmeet://bogus".to_string()]).code, None);
    }

    #[test]
    fn the_frame_socket_origin_is_the_only_connect_source_added() {
        let context: tauri::Context<tauri::Wry> = tauri::generate_context!();
        let mut csp = context.config().app.security.csp.clone();
        allow_connect(&mut csp, "ws://127.0.0.1:4321");
        let text = csp.unwrap().to_string();
        let connect = text.split(';').map(str::trim).find(|d| d.starts_with("connect-src")).unwrap();
        assert_eq!(connect, "connect-src ipc: http://ipc.localhost ws://127.0.0.1:4321");
    }
}
