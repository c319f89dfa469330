// The browser guest page, served by the relay over HTTPS (`/`, `/join#CODE`): join with
// the code and a name, device check with preview, waiting room, video grid, chat,
// mute / camera / leave. Talks to the relay through BrowserEngine (WebSocket + WebRTC).

import { createEffect, createSignal, For, onCleanup, onMount, Show, type JSX } from "solid-js";
import { render } from "solid-js/web";
import { BrowserEngine, GuestError, hasH264, openDevices, type GuestEvent } from "./engine/browser";
import type { ChatMessage, ParticipantId, ParticipantInfo } from "./engine/types";
import { parseAccessCode } from "./state/accessCode";
import "./styles.css";

declare global {
  interface Window {
    clinicmeetGuest?: BrowserEngine;
  }
}

type Screen = "join" | "waiting" | "meeting" | "ended";

function Video(props: { stream: MediaStream | null; muted?: boolean; label: string; testid?: string }): JSX.Element {
  let el: HTMLVideoElement | undefined;
  const attach = () => {
    if (el && el.srcObject !== props.stream) el.srcObject = props.stream;
  };
  // Re-attach whenever the stream changes (remote tracks arrive after the tile exists).
  createEffect(attach);
  return (
    <video
      ref={(v) => {
        el = v;
        queueMicrotask(attach);
      }}
      data-testid={props.testid}
      aria-label={props.label}
      autoplay
      playsinline
      muted={props.muted ?? false}
      style={{ width: "100%", "aspect-ratio": "16 / 9", background: "#111", "border-radius": "8px", "object-fit": "cover" }}
    />
  );
}

function Audio(props: { stream: MediaStream }): JSX.Element {
  return <audio ref={(a) => (a.srcObject = props.stream)} autoplay />;
}

function Guest(): JSX.Element {
  const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const engine = new BrowserEngine(wsUrl);
  window.clinicmeetGuest = engine;
  const [screen, setScreen] = createSignal<Screen>("join");
  const [code, setCode] = createSignal(decodeURIComponent(location.hash.replace(/^#/, "")));
  const [name, setName] = createSignal("");
  const [error, setError] = createSignal<string | null>(null);
  const [deviceError, setDeviceError] = createSignal<string | null>(null);
  const [mediaError, setMediaError] = createSignal<string | null>(hasH264() ? null : "This browser cannot send or receive H.264 video, so others would not see you. Please use a current Chrome, Edge, Safari or Firefox.");
  const [local, setLocal] = createSignal<MediaStream | null>(null);
  const [participants, setParticipants] = createSignal<ParticipantInfo[]>([]);
  const [videos, setVideos] = createSignal<Record<ParticipantId, MediaStream>>({});
  const [audios, setAudios] = createSignal<Record<ParticipantId, MediaStream>>({});
  const [chat, setChat] = createSignal<ChatMessage[]>([]);
  const [draft, setDraft] = createSignal("");
  const [typingNames, setTypingNames] = createSignal<string[]>([]);
  const [mic, setMic] = createSignal(true);
  const [cam, setCam] = createSignal(true);
  const [ended, setEnded] = createSignal("");
  const [busy, setBusy] = createSignal(false);

  const addChat = (m: ChatMessage) =>
    setChat((list) => (list.some((x) => x.seq === m.seq && x.client_msg_id === m.client_msg_id) ? list : [...list, m].sort((a, b) => a.seq - b.seq)));

  const enterMeeting = async () => {
    setScreen("meeting");
    for (const m of await engine.chatHistory().catch(() => [])) addChat(m);
  };

  const off = engine.on((e: GuestEvent) => {
    switch (e.type) {
      case "admitted":
        void enterMeeting();
        break;
      case "participants":
        setParticipants(e.participants.filter((p) => p.id !== engine.me));
        break;
      case "remote": {
        const set = e.kind === "video" ? setVideos : setAudios;
        set((cur) => {
          const next = { ...cur };
          if (e.stream) next[e.participant_id] = e.stream;
          else delete next[e.participant_id];
          return next;
        });
        break;
      }
      case "chat":
        addChat(e.message);
        break;
      case "typing": {
        const who = participants().find((p) => p.id === e.participant_id)?.display_name;
        if (who) setTypingNames((n) => (e.typing ? [...new Set([...n, who])] : n.filter((x) => x !== who)));
        break;
      }
      case "muted_by":
        setMic(false);
        break;
      case "media_error":
        setMediaError(e.message);
        break;
      case "denied":
        setEnded("The clinic did not admit you to this appointment.");
        setScreen("ended");
        break;
      case "removed":
        setEnded("You were removed from the appointment by the clinic.");
        setScreen("ended");
        break;
      case "meeting_ended":
        setEnded("The appointment has ended.");
        setScreen("ended");
        break;
      case "closed":
        if (screen() !== "ended") {
          setEnded("The connection to the clinic was lost.");
          setScreen("ended");
        }
        break;
    }
  });
  onCleanup(off);

  onMount(async () => {
    try {
      setLocal(await openDevices(true, true));
    } catch (e) {
      setDeviceError(e instanceof GuestError ? e.message : String(e));
      // Microphone alone, if only the camera is the problem.
      try {
        setLocal(await openDevices(false, true));
        setCam(false);
      } catch {
        setMic(false);
        setCam(false);
      }
    }
  });

  const join = async (ev: Event) => {
    ev.preventDefault();
    setError(null);
    const normalized = parseAccessCode(code());
    if (!normalized) {
      setError("Please check the appointment code (eight letters or digits).");
      return;
    }
    if (!name().trim()) {
      setError("Please enter your name.");
      return;
    }
    setBusy(true);
    try {
      await engine.connect();
      const r = await engine.join(normalized, name().trim(), local());
      if (r === "joined") await enterMeeting();
      else setScreen("waiting");
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  const send = async (ev: Event) => {
    ev.preventDefault();
    const text = draft().trim();
    if (!text) return;
    setDraft("");
    try {
      addChat(await engine.sendChat(text));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  return (
    <main class="guest" style={{ padding: "16px", "max-width": "1200px", margin: "0 auto" }}>
      <h1>ClinicMeet</h1>
      <Show when={mediaError()}>
        <p role="alert" data-testid="media-error" class="error">{mediaError()}</p>
      </Show>
      <Show when={error()}>
        <p role="alert" class="error">{error()}</p>
      </Show>
      <Show when={screen() === "join"}>
        <form onSubmit={join} data-testid="join-form" style={{ display: "grid", gap: "12px", "max-width": "480px" }}>
          <label>
            Appointment code
            <input data-testid="code" value={code()} onInput={(e) => setCode(e.currentTarget.value)} autocomplete="off" />
          </label>
          <label>
            Your name
            <input data-testid="name" value={name()} onInput={(e) => setName(e.currentTarget.value)} autocomplete="name" />
          </label>
          <section aria-label="Device check">
            <Video stream={local()} muted label="Your camera" testid="preview" />
            <Show when={deviceError()}>
              <p role="alert" data-testid="device-error" class="error">{deviceError()}</p>
            </Show>
          </section>
          <button type="submit" data-testid="join" disabled={busy()}>Join appointment</button>
          <p class="hint">Prefer the app? Open ClinicMeet on your computer and enter the same code.</p>
        </form>
      </Show>
      <Show when={screen() === "waiting"}>
        <section data-testid="waiting" aria-live="polite">
          <h2>Waiting room</h2>
          <p>The doctor will be with you shortly.</p>
          <div style={{ "max-width": "320px" }}><Video stream={local()} muted label="Your camera" /></div>
        </section>
      </Show>
      <Show when={screen() === "meeting"}>
        <section data-testid="meeting" style={{ display: "grid", "grid-template-columns": "1fr 320px", gap: "16px" }}>
          <div>
            <div data-testid="grid" style={{ display: "grid", "grid-template-columns": "repeat(auto-fill, minmax(280px, 1fr))", gap: "8px" }}>
              <For each={participants()}>
                {(p) => (
                  <figure data-testid="tile" data-participant={p.id} style={{ margin: 0 }}>
                    <Video stream={videos()[p.id] ?? null} muted label={p.display_name} testid="remote-video" />
                    <figcaption>{p.display_name}{p.media.audio ? "" : " (muted)"}</figcaption>
                  </figure>
                )}
              </For>
              <figure style={{ margin: 0 }}>
                <Video stream={local()} muted label="You" />
                <figcaption>You</figcaption>
              </figure>
            </div>
            <For each={Object.values(audios())}>{(s) => <Audio stream={s} />}</For>
            <div class="controls" style={{ display: "flex", gap: "8px", "margin-top": "12px" }}>
              <button data-testid="mic" onClick={() => { setMic(!mic()); void engine.setMedia({ audio: mic() }); }}>{mic() ? "Mute" : "Unmute"}</button>
              <button data-testid="cam" onClick={() => { setCam(!cam()); void engine.setMedia({ video: cam() }); }}>{cam() ? "Stop camera" : "Start camera"}</button>
              <button data-testid="leave" onClick={async () => { await engine.leave(); setEnded("You left the appointment."); setScreen("ended"); }}>Leave</button>
            </div>
          </div>
          <aside aria-label="Chat" style={{ display: "flex", "flex-direction": "column", gap: "8px" }}>
            <ol data-testid="chat" style={{ "list-style": "none", padding: 0, "overflow-y": "auto", "max-height": "60vh" }}>
              <For each={chat()}>
                {(m) => (
                  <li data-testid="chat-message">
                    <strong>{m.sender_id === engine.me ? "You" : m.sender_name}{m.sender_verified ? " ✓" : ""}</strong>: <span>{m.text}</span>
                  </li>
                )}
              </For>
            </ol>
            <Show when={typingNames().length}>
              <p class="hint">{typingNames().join(", ")} typing…</p>
            </Show>
            <form onSubmit={send} style={{ display: "flex", gap: "4px" }}>
              <input data-testid="chat-input" value={draft()} onInput={(e) => { setDraft(e.currentTarget.value); void engine.typing(e.currentTarget.value.length > 0).catch(() => undefined); }} aria-label="Message" />
              <button type="submit" data-testid="chat-send">Send</button>
            </form>
          </aside>
        </section>
      </Show>
      <Show when={screen() === "ended"}>
        <section data-testid="ended">
          <h2>{ended()}</h2>
        </section>
      </Show>
    </main>
  );
}

const root = document.getElementById("root");
if (root) render(() => <Guest />, root);
