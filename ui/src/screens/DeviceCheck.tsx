// Device check before joining: camera / microphone / speaker pickers, a live
// local preview, a mic level meter; join with camera off, mic muted or chat only.

import { createResource, createSignal, For, onCleanup, onMount, Show, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { errorText, LOCAL_PARTICIPANT, type DeviceInfo, type DeviceKind } from "../engine/engine";
import { MeetingSession } from "../state/session";
import { AppHeader } from "../components/AppHeader";
import { FormError } from "../components/Form";
import { Icon } from "../components/Icon";
import { MicMeter } from "../components/MicMeter";
import { VideoTile } from "../components/VideoTile";

function Picker(props: { kind: DeviceKind; label: string; devices: DeviceInfo[]; selected: string | null; missing: string; onPick: (id: string) => void }): JSX.Element {
  return (
    <div class="field">
      <label for={`dev-${props.kind}`}>{props.label}</label>
      <Show
        when={props.devices.length > 0}
        fallback={
          <p class="alert alert-warn device-missing" role="status">
            <Icon name="warning" size={20} />
            <span>{props.missing}</span>
          </p>
        }
      >
        <select id={`dev-${props.kind}`} value={props.selected ?? ""} onChange={(e) => props.onPick(e.currentTarget.value)}>
          <For each={props.devices}>{(d) => <option value={d.id}>{d.label}</option>}</For>
        </select>
      </Show>
    </div>
  );
}

/** `meetingId`: staff joining from the clinic view (by id, without the code). */
export function DeviceCheck(props: { code: string; displayName: string; meetingId?: string }): JSX.Element {
  const app = useApp();
  const [devices, { refetch }] = createResource(() => app.engine.listDevices());
  const [camera, setCamera] = createSignal(true);
  const [mic, setMic] = createSignal(true);
  const [level, setLevel] = createSignal(0);
  const [videoOn, setVideoOn] = createSignal(false);
  const [busy, setBusy] = createSignal(false);
  const [error, setError] = createSignal<string | null>(null);

  const warning = app.engine.mediaWarning?.() ?? null;
  const hasCamera = () => (devices()?.cameras.length ?? 0) > 0;
  const hasMic = () => (devices()?.microphones.length ?? 0) > 0;

  onMount(() => {
    const off = app.engine.subscribe((e) => {
      if (e.event === "audio_level" && e.participant_id === LOCAL_PARTICIPANT) setLevel(e.level);
      if (e.event === "video" && e.participant_id === LOCAL_PARTICIPANT) setVideoOn(e.available);
    });
    void app.engine.startPreview().catch((err) => setError(errorText(err)));
    onCleanup(() => {
      off();
      void app.engine.stopPreview();
    });
  });

  const pick = async (kind: DeviceKind, id: string) => {
    try {
      await app.engine.selectDevice(kind, id);
      void refetch();
      // The preview follows the pick (camera picture, microphone meter).
      if (kind !== "speaker") await app.engine.startPreview();
    } catch (err) {
      setError(errorText(err));
    }
  };

  const join = async (chatOnly: boolean) => {
    setBusy(true);
    setError(null);
    const session = new MeetingSession(app.engine);
    try {
      const options = {
        camera: !chatOnly && camera() && hasCamera(),
        mic: !chatOnly && mic() && hasMic(),
        chatOnly,
      };
      if (props.meetingId) await session.joinAsStaff(props.meetingId, props.displayName, options);
      else await session.join(props.code, props.displayName, options);
      app.go({ name: "meeting", session });
    } catch (err) {
      session.dispose();
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <>
      <AppHeader />
      <main class="page device-check" aria-labelledby="dc-title">
        <h1 id="dc-title">Check your camera and sound</h1>
        <p class="lead">
          Joining <span class="mono">{props.code}</span> as <strong>{props.displayName}</strong>
        </p>
        <div class="dc-grid">
          <section class="card dc-preview" aria-label="Preview">
            <Show
              when={hasCamera()}
              fallback={
                <div class="preview-empty" role="status">
                  <Icon name="cameraOff" size={40} />
                  <p>
                    <strong>No camera found.</strong> You can still join with sound and chat.
                  </p>
                </div>
              }
            >
              <VideoTile frameId={LOCAL_PARTICIPANT} name={props.displayName} audio={mic()} video={camera()} videoAvailable={videoOn()} self variant="preview" label="Your camera preview" />
            </Show>
            <div class="preview-toggles">
              <button
                type="button"
                class="btn btn-toggle"
                aria-pressed={mic() && hasMic()}
                disabled={!hasMic()}
                onClick={() => setMic(!mic())}
                title="Microphone on/off (Ctrl+D)"
                aria-keyshortcuts="Control+D"
              >
                <Icon name={mic() && hasMic() ? "mic" : "micOff"} />
                {mic() && hasMic() ? "Microphone on" : "Microphone off"}
              </button>
              <button
                type="button"
                class="btn btn-toggle"
                aria-pressed={camera() && hasCamera()}
                disabled={!hasCamera()}
                onClick={() => setCamera(!camera())}
                title="Camera on/off (Ctrl+E)"
                aria-keyshortcuts="Control+E"
              >
                <Icon name={camera() && hasCamera() ? "camera" : "cameraOff"} />
                {camera() && hasCamera() ? "Camera on" : "Camera off"}
              </button>
            </div>
          </section>
          <section class="card dc-devices" aria-label="Devices">
            <Show when={devices()} fallback={<p class="empty">Looking for devices…</p>}>
              {(d) => (
                <>
                  <Picker kind="camera" label="Camera" devices={d().cameras} selected={d().selected.camera} missing="No camera found. Others will see your initials." onPick={(id) => void pick("camera", id)} />
                  <Picker kind="microphone" label="Microphone" devices={d().microphones} selected={d().selected.microphone} missing="No microphone found. You can still listen and chat." onPick={(id) => void pick("microphone", id)} />
                  <Show when={hasMic()}>
                    <div class="field">
                      <span class="label" id="meter-label">
                        <Icon name="mic" size={16} /> Speak to test your microphone
                      </span>
                      <MicMeter level={mic() ? level() : 0} label="Microphone level" />
                    </div>
                  </Show>
                  <Picker kind="speaker" label="Speaker" devices={d().speakers} selected={d().selected.speaker} missing="No speaker found. You will not hear the others; chat still works." onPick={(id) => void pick("speaker", id)} />
                </>
              )}
            </Show>
            <FormError message={warning} testId="media-error" />
            <FormError message={error()} testId="device-error" />
            <div class="dc-actions">
              <button
                type="button"
                class="btn btn-primary btn-large"
                data-testid="join"
                // Until the devices are known, joining would go without camera and microphone.
                disabled={busy() || devices.loading}
                onClick={() => void join(false)}
              >
                {busy() ? "Joining…" : "Join meeting"}
              </button>
              <button type="button" class="btn btn-secondary" disabled={busy()} onClick={() => void join(true)}>
                <Icon name="chat" size={18} /> Join with chat only
              </button>
              <button type="button" class="btn btn-ghost" onClick={() => app.go({ name: "home" })}>
                Back
              </button>
            </div>
          </section>
        </div>
      </main>
    </>
  );
}
