//! Every parser of the wire protocol that reads network bytes survives arbitrary
//! input: the control-stream frame decoder, `ClientMessage::decode`, join secrets
//! and access codes, and the media datagram prefix. (The relay's own parsers have
//! theirs in `relay/tests/fuzz_parsers.rs`.)
//!
//! CI runs each target with 2,000 cases; `PROPTEST_CASES=1000000 cargo test -p
//! clinicmeet-protocol --test fuzz_parsers` runs the long campaign. The regression
//! corpus in `tests/corpus/<target>/` is replayed by `corpus_replays`.

use clinicmeet_protocol::frame::{frame_bytes, FrameDecoder};
use clinicmeet_protocol::{datagram, AccessCode, ClientMessage, JoinSecret};
use proptest::prelude::*;
use serde_json::Value;

/// 2,000 cases unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    ProptestConfig::with_cases(cases)
}

/// The frame decoder (limit `max`) fed `bytes` in pieces cut at `cuts`.
fn check_frames(bytes: &[u8], cuts: &[usize], max: usize) {
    let mut d = FrameDecoder::new(max);
    let mut at = 0;
    let mut pieces: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    pieces.sort_unstable();
    pieces.push(bytes.len());
    'outer: for end in pieces {
        d.push(&bytes[at..end]);
        at = end;
        loop {
            match d.next_frame() {
                Ok(Some(f)) => assert!(f.len() <= max),
                Ok(None) => break,
                Err(_) => break 'outer, // the reader closes the stream
            }
        }
        assert!(d.pending() <= bytes.len());
    }
}

fn check_client_decode(bytes: &[u8]) {
    if let Err(e) = ClientMessage::decode(bytes) {
        if let Some(id) = e.id {
            // The id is only ever one the frame carried.
            let v: Value = serde_json::from_slice(bytes).expect("an id comes from valid JSON");
            assert_eq!(v.get("id").and_then(Value::as_u64), Some(id));
        }
    }
}

fn check_secret(s: &str) {
    let _ = JoinSecret::parse(s);
    if let Ok(c) = AccessCode::parse(s) {
        // What parses prints to something that parses to the same code.
        assert!(AccessCode::parse(&c.to_string()).ok() == Some(c));
    }
}

fn check_datagram(bytes: &[u8]) {
    if let Some((flow, packet)) = datagram::decode(bytes) {
        assert!(flow <= datagram::MAX_FLOW_ID);
        assert!(!packet.is_empty());
        assert!(bytes.ends_with(packet));
    }
}

const TYPES: &[&str] = &[
    "hello",
    "enroll",
    "create_meeting",
    "list_meetings",
    "join",
    "resume",
    "leave",
    "admit",
    "deny",
    "mute",
    "remove",
    "set_locked",
    "end_meeting",
    "promote",
    "demote",
    "update_media",
    "send_chat",
    "typing",
    "ping",
    "publish",
    "subscribe",
    "unsubscribe",
    "chat_history",
    "rekey_meeting",
    "start_recording",
    "stop_recording",
    "add_note",
    "keyframe_request",
];
const FIELDS: &[&str] = &[
    "id",
    "type",
    "code",
    "join_secret",
    "display_name",
    "participant_id",
    "meeting_id",
    "spec",
    "media",
    "text",
    "client_id",
    "locked",
    "typing",
    "resume_token",
    "enrollment_code",
    "device_name",
    "track",
    "kind",
    "since",
    "min_version",
    "max_version",
    "credential",
    "audio",
    "video",
    "until",
    "limit",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::String),
        prop::sample::select(TYPES).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// A request-shaped object: `{"id":…,"type":<a request type>, …fields}`, sometimes mangled.
fn request_like() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::option::of(any::<u64>()),
        prop_oneof![prop::sample::select(TYPES).prop_map(str::to_string), ".{0,12}"],
        prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..6),
        any::<usize>(),
        any::<u8>(),
    )
        .prop_map(|(id, ty, fields, cut, flip)| {
            let mut o = serde_json::Map::new();
            if let Some(id) = id {
                o.insert("id".into(), id.into());
            }
            o.insert("type".into(), ty.into());
            for (k, v) in fields {
                o.insert(k.to_string(), v);
            }
            let mut b = serde_json::to_vec(&Value::Object(o)).unwrap();
            match flip % 4 {
                0 => b.truncate(cut % (b.len() + 1)), // truncated
                1 => {
                    let i = cut % b.len();
                    b[i] ^= flip; // one byte changed
                }
                _ => {}
            }
            b
        })
}

fn code_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9 -]{0,40}",
        "[ABCDEFGHJKMNPQRSTVWXYZ0-9]{4}-?[ABCDEFGHJKMNPQRSTVWXYZ0-9]{4}",
        "https?://[a-z.]{0,12}/[a-z]{0,6}#?[A-Za-z0-9-]{0,40}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frame_decoder_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        max in prop_oneof![Just(clinicmeet_protocol::limits::MAX_FRAME_LEN), 0usize..300],
    ) {
        check_frames(&bytes, &cuts, max);
    }

    #[test]
    fn frame_decoder_splits_well_formed_streams_anywhere(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream: Vec<u8> = bodies.iter().flat_map(|b| frame_bytes(b).unwrap()).collect();
        let mut pieces: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        pieces.sort_unstable();
        pieces.push(stream.len());
        let mut d = FrameDecoder::default();
        let mut got = Vec::new();
        let mut at = 0;
        for end in pieces {
            d.push(&stream[at..end]);
            at = end;
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, bodies);
        prop_assert_eq!(d.pending(), 0);
    }

    #[test]
    fn client_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check_client_decode(&bytes);
    }

    #[test]
    fn client_decode_request_like_never_panics(body in request_like()) {
        check_client_decode(&body);
    }

    #[test]
    fn join_secret_and_access_code_parse_never_panic(s in code_like()) {
        check_secret(&s);
    }

    #[test]
    fn datagram_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        check_datagram(&bytes);
    }
}

/// Every file in `tests/corpus/<target>/` through its target (on every CI run).
#[test]
fn corpus_replays() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut n = 0;
    for (target, check) in [
        (
            "frames",
            (|b: &[u8]| {
                check_frames(b, &[], clinicmeet_protocol::limits::MAX_FRAME_LEN);
                check_frames(b, &[1, 3, 5, 9], 64);
            }) as fn(&[u8]),
        ),
        ("client_decode", check_client_decode),
        ("secrets", |b| check_secret(&String::from_utf8_lossy(b))),
        ("datagram", check_datagram),
    ] {
        let dir = root.join(target);
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = e.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n >= 12, "corpus has {n} inputs");
}
