//! Gates every app command behind the ACL (each needs an `allow-<command>`
//! permission in `capabilities/`), and makes sure the front end to embed exists.

/// Every command the UI may invoke; `capabilities/default.json` grants exactly these.
const COMMANDS: &[&str] = &[
    "saved_relay",
    "launch_info",
    "connect",
    "disconnect",
    "enroll",
    "create_meeting",
    "list_meetings",
    "join",
    "leave",
    "admit",
    "deny",
    "mute",
    "allow_unmute",
    "remove",
    "promote",
    "demote",
    "set_locked",
    "set_self_unmute",
    "rekey_meeting",
    "end_meeting",
    "start_consultation",
    "end_consultation",
    "save_consultation_notes",
    "consultations",
    "update_media",
    "list_devices",
    "select_device",
    "start_preview",
    "stop_preview",
    "send_chat",
    "retry_chat",
    "typing",
    "chat_history",
    "subscribe",
    "frame_socket",
    "set_video_size",
    "consultation_record",
    "amend_consultation",
    "local_meetings",
    "past_meetings",
    "clinic_meetings",
    "join_as_staff",
    "cancel_meeting",
    "save_invitation",
];

fn main() {
    // The app embeds ../ui/dist (built by `npm run build` in ui/; scripts/test.sh and
    // scripts/run.sh build it first). A workspace build without it still compiles,
    // with a page that says what to do.
    let dist = std::path::Path::new("../ui/dist");
    println!("cargo:rerun-if-changed=../ui/dist");
    if !dist.join("index.html").exists() {
        println!("cargo:warning=ui/dist is missing: run `npm ci && npm run build` in ui/ (a placeholder page is embedded)");
        let _ = std::fs::create_dir_all(dist);
        let _ = std::fs::write(
            dist.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>ClinicMeet</title>\
             <p>The user interface was not built. Run <code>npm ci &amp;&amp; npm run build</code> in <code>ui/</code>, then rebuild.</p>",
        );
    }
    let attrs =
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attrs) {
        panic!("tauri build step failed: {e:#}");
    }
}
