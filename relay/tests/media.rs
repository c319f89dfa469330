//! Media through the real relay process: publish, subscribe, RTP over QUIC
//! datagrams with rewriting, NACK answered from the relay's cache, keyframe
//! request on subscribe, host mute enforced on the relay, screen share rules
//! and forwarding capacity.

mod common;

use std::time::Duration;

use bytes::Bytes;
use clinicmeet_protocol::{
    datagram, Codec, EncodingSpec, ErrorCode, Event, FlowId, MediaState, MeetingKind, MeetingSettings,
    MeetingSpec, Request, Response, TrackKind, TrackPublished, TrackSpec, TrackUnpublished,
};
use clinicmeet_rtp::ext::VideoLayer;
use clinicmeet_rtp::rtcp::{self, Nack, RtcpPacket};
use clinicmeet_rtp::{is_rtcp, HeaderExtensions, RtpPacket, RtpView};
use common::*;

fn rtp(ssrc: u32, seq: u16, pt: u8, layer: Option<VideoLayer>) -> Vec<u8> {
    RtpPacket {
        marker: false,
        payload_type: pt,
        sequence: seq,
        timestamp: u32::from(seq) * 3000,
        ssrc,
        extensions: HeaderExtensions { video_layer: layer, ..Default::default() },
        payload: vec![seq as u8; 200],
    }
    .to_bytes()
}

fn video_layer(start: bool, keyframe: bool) -> Option<VideoLayer> {
    Some(VideoLayer {
        start_of_frame: start,
        end_of_frame: true,
        keyframe,
        temporal_id: 0,
        spatial_id: 0,
        temporal_layers: 1,
    })
}

fn send(c: &Client, flow: FlowId, packet: &[u8]) {
    c.conn.send_datagram(Bytes::from(datagram::encode(flow, packet))).unwrap();
}

/// Next datagram on `flow` within `ms` (others are skipped).
async fn recv(c: &Client, flow: FlowId, ms: u64) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        let d = tokio::time::timeout_at(deadline, c.conn.read_datagram()).await.ok()?.ok()?;
        if let Some((f, p)) = datagram::decode(&d) {
            if f == flow {
                return Some(p.to_vec());
            }
        }
    }
}

fn track(kind: TrackKind, ssrc: u32) -> TrackSpec {
    let audio = kind == TrackKind::Audio;
    TrackSpec {
        kind,
        codec: if audio { Codec::Opus } else { Codec::H264 },
        encodings: vec![EncodingSpec {
            ssrc,
            width: if audio { 0 } else { 640 },
            height: if audio { 0 } else { 360 },
            max_bitrate_bps: 800_000,
            temporal_layers: 1,
        }],
    }
}

const ON: MediaState = MediaState { audio: true, video: true, screen: false };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_forward_nack_pli_mute_and_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &["--max-forwarded-streams", "2"]);
    let (_, code) = add_staff(&relay.data_dir, "Dr Ada");
    let mut host = Client::connect(&relay).await;
    host.hello(None).await.unwrap();
    let Ok(Response::Enrolled { device_credential: _, .. }) =
        host.call(Request::Enroll { enrollment_code: code, device_name: "laptop".into() }).await
    else {
        panic!("enroll")
    };
    let settings = MeetingSettings { allow_screen_share: false, ..MeetingSettings::default() };
    let spec = MeetingSpec {
        title: "Clinic".into(),
        description: None,
        kind: MeetingKind::Video,
        patient_reference: None,
        schedule: None,
        settings,
    };
    let Ok(Response::MeetingCreated { access_code, .. }) = host.call(Request::CreateMeeting { spec }).await
    else {
        panic!("create")
    };
    let join =
        |name: &str| Request::Join { access_code: access_code.clone(), display_name: name.into(), media: ON };
    assert!(matches!(host.call(join("Ada")).await, Ok(Response::Joined(_))));
    let mut guest = Client::connect(&relay).await;
    guest.hello(None).await.unwrap();
    let Ok(Response::Joined(gjs)) = guest.call(join("Pat")).await else { panic!("guest join") };
    let guest_id = gjs.you.id;

    // Screen share is refused in this meeting.
    let err = host.call(Request::Publish { track: track(TrackKind::Screen, 5) }).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);

    // Host publishes video; the guest hears of it and subscribes.
    let Ok(Response::Published { track_id, flow_id: pub_flow }) =
        host.call(Request::Publish { track: track(TrackKind::Video, 1000) }).await
    else {
        panic!("publish")
    };
    let ev = guest.event(|e| matches!(e, Event::TrackPublished(_))).await;
    let Event::TrackPublished(TrackPublished { track: info }) = ev else { unreachable!() };
    assert_eq!(info.track_id, track_id);
    let Ok(Response::Subscribed { flow_id: sub_flow, .. }) =
        guest.call(Request::Subscribe { track_id, max_encoding: None }).await
    else {
        panic!("subscribe")
    };

    // The relay asks the publisher for a keyframe at once.
    let fb = recv(&host, pub_flow, 1000).await.expect("PLI on the publisher flow");
    assert!(is_rtcp(&fb));
    let pli = rtcp::parse_compound(&fb).unwrap();
    assert!(matches!(pli[..], [RtcpPacket::Pli(p)] if p.media_ssrc == 1000));

    // A delta frame (not forwarded: no keyframe yet), a keyframe, deltas; 106 is lost.
    send(&host, pub_flow, &rtp(1000, 99, 102, video_layer(true, false)));
    for seq in 100..110u16 {
        if seq != 106 {
            send(&host, pub_flow, &rtp(1000, seq, 102, video_layer(seq == 100 || seq == 103, seq == 100)));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut got = Vec::new();
    while let Some(p) = recv(&guest, sub_flow, 500).await {
        let v = RtpView::parse(&p).unwrap();
        got.push((v.sequence, v.ssrc, v.payload()[0]));
        if got.len() == 9 {
            break;
        }
    }
    assert_eq!(got.len(), 9, "keyframe onwards, without the lost packet: {got:?}");
    assert!(got.iter().all(|g| g.1 == 1000));
    assert_eq!(got[0].2, 100, "starts at the keyframe");
    let first = got[0].0;
    for (seq, _, orig) in &got {
        assert_eq!(seq.wrapping_sub(first), u16::from(orig - 100), "numbering follows the original gaps");
    }

    // The guest NACKs 104 (under its rewritten number): the relay answers from its cache.
    let nack = RtcpPacket::Nack(Nack { sender_ssrc: 1, media_ssrc: 1000, lost: vec![first.wrapping_add(4)] });
    send(&guest, sub_flow, &nack.to_bytes());
    let re = recv(&guest, sub_flow, 1000).await.expect("retransmission");
    let v = RtpView::parse(&re).unwrap();
    assert_eq!((v.sequence, v.payload()[0]), (first.wrapping_add(4), 104));
    // The publisher hears only the relay's own NACK for the packet lost before the
    // relay (sender SSRC = the relay's), never the subscriber's.
    while let Some(p) = recv(&host, pub_flow, 200).await {
        for pkt in clinicmeet_rtp::rtcp::parse_compound(&p).unwrap_or_default() {
            if let RtcpPacket::Nack(n) = pkt {
                assert_ne!(n.sender_ssrc, 1, "the subscriber's NACK reached the publisher");
            }
        }
    }

    // The guest publishes audio, the host listens; the host mutes the guest,
    // who keeps sending: nothing more is forwarded.
    let Ok(Response::Published { track_id: audio_id, flow_id: audio_flow }) =
        guest.call(Request::Publish { track: track(TrackKind::Audio, 77) }).await
    else {
        panic!("publish audio")
    };
    let Ok(Response::Subscribed { flow_id: listen_flow, .. }) =
        host.call(Request::Subscribe { track_id: audio_id, max_encoding: None }).await
    else {
        panic!("subscribe audio")
    };
    send(&guest, audio_flow, &rtp(77, 1, 111, None));
    assert!(recv(&host, listen_flow, 1000).await.is_some(), "audio forwarded");
    host.call(Request::Mute { participant_id: guest_id }).await.unwrap();
    guest.event(|e| matches!(e, Event::MutedBy(_))).await;
    for seq in 2..20u16 {
        send(&guest, audio_flow, &rtp(77, seq, 111, None));
    }
    assert!(
        recv(&host, listen_flow, 500).await.is_none(),
        "a host mute holds even if the client keeps sending"
    );
    // Unmuting itself lets audio through again.
    guest.call(Request::UpdateMedia { media: ON }).await.unwrap();
    send(&guest, audio_flow, &rtp(77, 20, 111, None));
    assert!(recv(&host, listen_flow, 1000).await.is_some(), "audio forwarded after unmute");

    // Two forwarded streams is this relay's capacity: a third participant is refused.
    let mut third = Client::connect(&relay).await;
    third.hello(None).await.unwrap();
    let err = third.call(join("Sam")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ServerBusy);

    // Unpublishing tells subscribers.
    host.call(Request::Unpublish { track_id }).await.unwrap();
    guest
        .event(|e| matches!(e, Event::TrackUnpublished(TrackUnpublished { track_id: t }) if *t == track_id))
        .await;
}
